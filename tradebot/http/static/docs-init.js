// Renders /api/openapi.json with Swagger UI; kept out of the HTML so the page needs no inline script.
window.addEventListener("load", function () {
  window.SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
