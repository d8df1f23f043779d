// Starts Swagger UI on /schema and /schema/swagger: a served script, so that the page's policy allows no inline
// script. What it needs of the page (the document's URL, the OAuth2 redirect page) it reads from the container.
"use strict";
(function () {
  const container = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: container.dataset.documentUrl,
    dom_id: "#swagger-ui",
    oauth2RedirectUrl: new URL(container.dataset.oauth2RedirectUrl, window.location.href).href,
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
    validatorUrl: null, // the default would send the document to validator.swagger.io
  });
})();
