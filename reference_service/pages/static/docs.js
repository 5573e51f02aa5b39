// Swagger UI over the bundled spec, offline: no validator badge, nothing fetched from elsewhere.
window.addEventListener("load", function () {
  "use strict";
  window.ui = SwaggerUIBundle({
    url: "/docs/spec.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    docExpansion: "none",
    filter: true,
    defaultModelsExpandDepth: 0
  });
});
