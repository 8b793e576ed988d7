/* Sign-in page: exchange the dashboard token for a browser session cookie. */
"use strict";
(() => {
  Fleet.start(async () => {
    const form = document.getElementById("signin");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = document.getElementById("signin-out");
      out.textContent = "";
      try {
        await Fleet.api("POST", "/api/session", { token: document.getElementById("token").value.trim() });
        location.href = form.dataset.next || "/";
      } catch (e) {
        out.textContent = e.message;
      }
    });
  });
})();
