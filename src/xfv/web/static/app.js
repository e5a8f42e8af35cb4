/* xfv: helpers shared by every page and the X-Map viewer component. Plain JavaScript, no dependencies. */
"use strict";

const xfv = (() => {
  /** fetch() that returns parsed JSON and throws an Error carrying the API's "detail" message. */
  async function request(url, options = {}) {
    const response = await fetch(url, options);
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const detail = body && body.detail !== undefined ? body.detail : `${response.status} ${response.statusText}`;
      throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return body;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Poll a background job until it is done (resolves) or failed (throws); onProgress sees every state. */
  async function pollJob(job, onProgress, interval = 500) {
    let state = job;
    onProgress(state);
    while (state.status === "queued" || state.status === "running") {
      await sleep(interval);
      state = await request(`/api/jobs/${encodeURIComponent(job.id)}`);
      onProgress(state);
    }
    if (state.status === "failed") throw new Error(state.error || "the job failed");
    return state;
  }

  /** Show a fraction (0..1) in a .progress element. */
  function setProgress(element, fraction, label) {
    const percent = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    element.hidden = false;
    element.querySelector(".progress-bar").style.width = `${percent}%`;
    element.querySelector(".progress-text").textContent = label || `${percent} %`;
  }

  const format = (value, digits = 3) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

  return { request, pollJob, setProgress, format };
})();

/**
 * The X-Map viewer: method, patch size, display and opacity controls over the two aligned faces.
 * source "pair": a stored pair (maps from /api/pairs/..., computed on request when missing);
 * source "upload": an uploaded pair whose maps the explain page has computed.
 */
class XMapViewer {
  constructor(root) {
    this.root = root;
    this.source = root.dataset.source;
    this.id = root.dataset.id;
    this.auto = root.dataset.auto === "1";
    this.useHash = root.dataset.hash === "1";
    this.hashPrefix = root.dataset.side === "b" ? "b." : "";  // the second of two viewers side by side
    this.state = { model: root.dataset.model, method: "1", patch: "merged", display: "blend", opacity: "100", setting: "" };
    if (this.useHash) Object.assign(this.state, this.readHash());
    this.status = root.querySelector("[data-status]");
    this.message = root.querySelector("[data-message]");
    this.progress = root.querySelector("[data-progress]");
    this.computeButton = root.querySelector("[data-compute]");
    this.bind();
    root.xmapViewer = this;
  }

  readHash() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const known = ["model", "method", "patch", "display", "opacity", "setting"];
    const prefix = this.hashPrefix;
    return Object.fromEntries(known.filter((key) => params.get(prefix + key)).map((key) => [key, params.get(prefix + key)]));
  }

  bind() {
    this.root.querySelectorAll(".seg[data-control]").forEach((group) => {
      group.addEventListener("click", (event) => {
        const button = event.target.closest("button[data-value]");
        if (button) this.set(group.dataset.control, button.dataset.value);
      });
    });
    const slider = this.root.querySelector('input[data-control="opacity"]');
    if (slider) {
      slider.value = this.state.opacity;
      slider.addEventListener("input", () => this.set("opacity", slider.value));
    }
    if (this.computeButton) this.computeButton.addEventListener("click", () => this.compute());
    this.root.querySelectorAll("img.overlay").forEach((image) => {
      image.addEventListener("load", () => this.loaded(image));
      image.addEventListener("error", () => image.getAttribute("src") && this.fail("this map could not be loaded"));
    });
  }

  set(key, value) {
    this.state[key] = String(value);
    this.render();
  }

  setModel(model) {
    this.state.model = model;
    this.state.setting = "";
    return this.load();
  }

  base() {
    return this.source === "pair"
      ? `/api/pairs/${this.id}`
      : `/api/uploads/${encodeURIComponent(this.id)}`;
  }

  faceUrl(image) {
    const model = this.source === "pair" ? `?model=${encodeURIComponent(this.state.model)}` : "";
    return `${this.base()}/aligned/${image}.png${model}`;
  }

  mapUrl(image) {
    const { method, patch, display, setting } = this.state;
    const model = this.source === "pair" ? `/${encodeURIComponent(this.state.model)}` : "";
    const query = new URLSearchParams({ patch, display });
    if (setting) query.set("setting", setting);
    if (this.level && !setting) query.set("level", this.level);  // a coarse map of a running job
    return `${this.base()}/xmaps${model}/${method}/${image}.png?${query}`;
  }

  setPhase(phase, text) {
    this.root.dataset.state = phase;
    if (!this.status) return;
    this.status.hidden = phase === "ready" || phase === "loading";
    this.status.classList.toggle("failed", phase === "failed");
    if (this.message) this.message.textContent = text || "";
    if (this.progress) this.progress.hidden = phase !== "computing";
    if (this.computeButton) this.computeButton.hidden = !(phase === "missing" || phase === "failed");
  }

  /** Find the maps of the current model (a stored pair) and show them, computing them if asked. */
  async load() {
    if (this.source !== "pair") return this.render();
    let info;
    try {
      info = await xfv.request(`/api/pairs/${this.id}`);
    } catch (error) {
      return this.fail(error.message);
    }
    const maps = info.pair.xmaps.filter((entry) => entry.model === this.state.model);
    if (!maps.length) {
      this.clearImages();
      this.setPhase("missing", `No X-Maps of ${this.state.model} for this pair yet.`);
      if (this.auto) this.compute();
      return undefined;
    }
    const chosen = maps.find((m) => m.setting === this.state.setting)
      || maps.find((m) => m.setting === info.server_setting) || maps[0];
    this.state.setting = chosen.setting;
    this.patchSizes(chosen.params.patch_sizes || []);
    return this.render();
  }

  /** Rebuild the patch-size buttons for the stored setting's sizes. */
  patchSizes(sizes) {
    const group = this.root.querySelector('.seg[data-control="patch"]');
    const values = [...sizes.map(String), "merged"];
    const current = [...group.querySelectorAll("button")].map((b) => b.dataset.value);
    if (values.join() !== current.join()) {
      group.replaceChildren(...values.map((value) => {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.value = value;
        button.textContent = value;
        return button;
      }));
    }
    if (!values.includes(this.state.patch)) this.state.patch = "merged";
  }

  clearImages() {
    this.root.querySelectorAll(".stack img").forEach((image) => image.removeAttribute("src"));
  }

  render() {
    this.root.querySelectorAll(".seg[data-control]").forEach((group) => {
      group.querySelectorAll("button").forEach((button) => {
        const on = button.dataset.value === this.state[group.dataset.control];
        button.classList.toggle("on", on);
        button.setAttribute("aria-pressed", String(on));
      });
    });
    const output = this.root.querySelector("[data-opacity-value]");
    if (output) output.textContent = `${this.state.opacity} %`;
    let changed = false;
    [1, 2].forEach((image) => {
      const face = this.root.querySelector(`img[data-image="${image}"]`);
      const overlay = this.root.querySelector(`img[data-overlay="${image}"]`);
      const faceUrl = this.faceUrl(image);
      const mapUrl = this.mapUrl(image);
      if (face.getAttribute("src") !== faceUrl) face.src = faceUrl;
      if (overlay.getAttribute("src") !== mapUrl) {
        overlay.closest(".stack").classList.add("loading");
        overlay.src = mapUrl;
        changed = true;
      }
      overlay.style.opacity = String(Number(this.state.opacity) / 100);
    });
    if (this.level) this.setPhase("computing", this.computingText);
    else this.setPhase(changed ? "loading" : "ready");
    if (this.useHash) this.writeHash();
  }

  loaded(image) {
    image.closest(".stack").classList.remove("loading");
    const pending = [...this.root.querySelectorAll(".stack.loading")].length;
    if (!pending && !this.level) this.setPhase("ready");
  }

  /** Show the coarse maps a running job has so far (its info names the patch sizes done). */
  showLevel(job) {
    const info = job.info || {};
    const done = info.patch_sizes_done || [];
    if (!done.length || job.status !== "running" || done.length === (info.patch_sizes || []).length) return;
    const next = (info.patch_sizes || []).find((size) => !done.includes(size));
    this.computingText = `Showing the ${done.join(" + ")} px maps; refining with ${next} px patches…`;
    this.root.dataset.level = done.join("-");
    if (this.level === this.root.dataset.level) return;
    this.level = this.root.dataset.level;
    this.state.setting = "";
    this.patchSizes(done);
    this.render();
  }

  /** Keep this viewer's state in the URL's #fragment (under its prefix, beside another viewer's). */
  writeHash() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    ["model", "method", "patch", "display", "opacity"].forEach((key) => {
      if (this.state.model) params.set(this.hashPrefix + key, this.state[key]);
      else params.delete(this.hashPrefix + key);
    });
    window.history.replaceState(null, "", `${window.location.pathname}${window.location.search}#${params}`);
  }

  fail(message) {
    this.setPhase("failed", message);
  }

  /** Start (or join) the job computing this pair's maps, show its progress, then show the maps. */
  async compute() {
    this.computingText = `Computing the X-Maps of ${this.state.model}, largest patches first: every occluded face goes through the model…`;
    this.setPhase("computing", this.computingText);
    try {
      const answer = await xfv.request(`/api/pairs/${this.id}/xmaps/${encodeURIComponent(this.state.model)}`, { method: "POST" });
      if (answer.job) {
        await xfv.pollJob(answer.job, (job) => {
          this.showLevel(job);
          const done = (job.info && job.info.patch_sizes_done) || [];
          const levels = (job.info && job.info.patch_sizes) || [];
          const level = levels.length ? ` · level ${Math.min(done.length + 1, levels.length)} of ${levels.length}` : "";
          xfv.setProgress(this.progress, job.progress,
            `${Math.round(job.progress * 100)} %${level} · ${job.done} of ${job.total} forward passes`);
        });
      }
      this.auto = false;
      this.level = "";
      delete this.root.dataset.level;
      await this.load();
    } catch (error) {
      this.level = "";
      this.fail(`Computing the X-Maps failed: ${error.message}`);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-xmap-viewer]").forEach((root) => {
    if (!root.dataset.id) return;
    const viewer = new XMapViewer(root);
    if (viewer.state.model) viewer.load();
  });
  document.querySelectorAll("form[data-auto-submit]").forEach((form) => {
    form.addEventListener("change", (event) => {
      if (event.target.matches("select, input[type=range]")) form.requestSubmit();
    });
    form.addEventListener("submit", () => {
      form.querySelectorAll("input, select").forEach((field) => {
        if (field.name && field.value === "") field.disabled = true;
      });
    });
  });
  document.querySelectorAll("input[data-output]").forEach((input) => {
    const output = document.getElementById(input.dataset.output);
    input.addEventListener("input", () => { output.textContent = Number(input.value).toFixed(2); });
  });
  document.querySelectorAll("a[data-back]").forEach((link) => {
    link.addEventListener("click", (event) => { event.preventDefault(); history.back(); });
  });
});
