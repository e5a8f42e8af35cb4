/* Explorer: a click anywhere on a row opens the pair in the viewer, keeping the table's order. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("pairs");
  if (!table) return;
  table.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a")) return;
    if (event.metaKey || event.ctrlKey) window.open(row.dataset.href, "_blank");
    else window.location.href = row.dataset.href;
  });
});
