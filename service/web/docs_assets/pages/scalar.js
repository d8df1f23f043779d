// Starts Scalar on /schema/scalar: a served script, so that the page's policy allows no inline script. Its
// configuration (which keeps every request at home) is the JSON the page carries in #scalar-configuration.
"use strict";
(function () {
  const configuration = JSON.parse(document.getElementById("scalar-configuration").textContent);
  // The document's one server is "/", this origin; Scalar joins "/" and a route's path into "//api/...", so it is
  // told the origin itself.
  configuration.servers = [{ url: window.location.origin }];
  Scalar.createApiReference("#scalar", configuration);
})();
