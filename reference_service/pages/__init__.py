"""What a person sees of the reference service: page templates, the stylesheet and scripts, vendored Swagger UI,
and the pure view models the templates are filled from (``summaries``). The routes are in ``http.console``."""
