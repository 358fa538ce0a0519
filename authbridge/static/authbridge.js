/* authbridge browser client (placeholder until the client issue lands). */
(function () {
  "use strict";
  window.authbridge = window.authbridge || {};
})();
