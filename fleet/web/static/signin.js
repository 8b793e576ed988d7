/* Sign-in page: exchange the dashboard token for a browser session cookie. */
"use strict";
(() => {
  /* The server already refuses any other target; this is the second lock. */
  function sameOrigin(next) {
    try {
      const url = new URL(next || "/", location.origin);
      return url.origin === location.origin ? url.pathname + url.search + url.hash : "/";
    } catch (e) {
      return "/";
    }
  }

  Fleet.start(async () => {
    const form = document.getElementById("signin");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = document.getElementById("signin-out");
      out.textContent = "";
      try {
        await Fleet.api("POST", "/api/session", { token: document.getElementById("token").value.trim() });
        location.href = sameOrigin(form.dataset.next);
      } catch (e) {
        out.textContent = e.message;
      }
    });
  });
})();
