"""The reference service's HTTP surface on Starlette: routes, auth, pages (``app.create_app`` builds it)."""
