/* Review queue: show each pair's X-Maps (or compute them), and record agree/disagree with a comment. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const queue = document.getElementById("queue");
  if (!queue) return;
  const model = queue.dataset.model;

  async function showMaps(card) {
    const pairId = card.dataset.pair;
    const status = card.querySelector("[data-map-status]");
    const info = await xfv.request(`/api/pairs/${pairId}`);
    const maps = info.pair.xmaps.filter((entry) => entry.model === model);
    if (!maps.length) {
      status.innerHTML = "";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn small";
      button.textContent = "Compute X-Maps";
      button.addEventListener("click", () => compute(card, button));
      status.append("No X-Maps yet. ", button);
      return;
    }
    const setting = (maps.find((m) => m.setting === info.server_setting) || maps[0]).setting;
    card.querySelectorAll("img[data-map]").forEach((image) => {
      const query = new URLSearchParams({ patch: "merged", display: "blend", setting });
      image.src = `/api/pairs/${pairId}/xmaps/${encodeURIComponent(model)}/1/${image.dataset.map}.png?${query}`;
      image.hidden = false;
    });
    status.textContent = "X-Maps: method I, merged.";
  }

  async function compute(card, button) {
    const status = card.querySelector("[data-map-status]");
    button.disabled = true;
    try {
      const answer = await xfv.request(`/api/pairs/${card.dataset.pair}/xmaps/${encodeURIComponent(model)}`, { method: "POST" });
      if (answer.job) {
        await xfv.pollJob(answer.job, (job) => { status.textContent = `Computing X-Maps… ${Math.round(job.progress * 100)} %`; });
      }
      await showMaps(card);
    } catch (error) {
      status.textContent = `Computing the X-Maps failed: ${error.message}`;
    }
  }

  queue.querySelectorAll(".queue-item").forEach((card) => {
    showMaps(card).catch((error) => { card.querySelector("[data-map-status]").textContent = error.message; });
  });

  queue.querySelectorAll("[data-review-form]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const state = form.querySelector("[data-review-state]");
      const data = new FormData(form);
      const body = {
        pair_id: Number(form.dataset.pair),
        model,
        verdict: event.submitter ? event.submitter.value : "agree",
        comment: data.get("comment") || "",
        reviewer: data.get("reviewer") || "",
      };
      try {
        const saved = await xfv.request("/api/reviews", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
        state.textContent = `Saved: you ${saved.verdict} with the model.`;
        state.classList.add("saved");
        form.closest(".queue-item").classList.add("reviewed");
      } catch (error) {
        state.textContent = `Not saved: ${error.message}`;
      }
    });
  });
});
