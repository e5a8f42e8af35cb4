/* Explain your own pair: upload two photos, show faces and decision at once, X-Maps when computed.
   Every face found is drawn as a numbered box over its photo; clicking one verifies again with it. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("explain-form");
  if (!form) return;
  const errorBox = document.getElementById("explain-error");
  const submit = document.getElementById("explain-submit");
  const result = document.getElementById("explain-result");
  const maxBytes = Number(form.dataset.maxBytes);

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  };

  form.querySelectorAll("[data-dropzone]").forEach((zone) => {
    const input = zone.querySelector("input[type=file]");
    const preview = zone.querySelector(".drop-preview");
    const text = zone.querySelector(".drop-text");
    const blank = text.innerHTML;
    const show = () => {
      zone.querySelector("[data-face-choice]").value = "auto";
      const file = input.files[0];
      const picture = Boolean(file) && file.type.startsWith("image/");
      zone.classList.toggle("filled", picture);
      preview.hidden = !picture;
      if (picture) preview.src = URL.createObjectURL(file);
      if (file && !picture) text.textContent = `${file.name} (${file.type || "unknown type"})`;
      else if (!file) text.innerHTML = blank;
    };
    input.addEventListener("change", show);
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer.files.length) { input.files = event.dataTransfer.files; show(); }
    });
  });

  function tooLarge() {
    for (const input of form.querySelectorAll("input[type=file]")) {
      const file = input.files[0];
      if (file && file.size > maxBytes) {
        return `${file.name} is ${(file.size / 1e6).toFixed(1)} MB: photos may be at most ${(maxBytes / 1e6).toFixed(1)} MB`;
      }
    }
    return "";
  }

  /* Numbered, clickable boxes over photo n for every face found; the one used is marked. */
  function drawFaces(n, photo) {
    const picker = result.querySelector(`[data-face-picker="${n}"]`);
    picker.querySelectorAll(".face-box").forEach((box) => box.remove());
    photo.boxes.forEach(([left, top, right, bottom], index) => {
      const number = index + 1;
      const box = document.createElement("button");
      box.type = "button";
      box.className = `face-box${number === photo.face ? " chosen" : ""}`;
      box.dataset.face = String(number);
      box.title = number === photo.face ? `face ${number} (used)` : `use face ${number}`;
      box.textContent = String(number);
      box.style.left = `${(left / photo.width) * 100}%`;
      box.style.top = `${(top / photo.height) * 100}%`;
      box.style.width = `${((right - left) / photo.width) * 100}%`;
      box.style.height = `${((bottom - top) / photo.height) * 100}%`;
      box.disabled = number === photo.face;
      box.addEventListener("click", () => {
        form.querySelector(`[data-face-choice="${n}"]`).value = String(number);
        form.requestSubmit();
      });
      picker.appendChild(box);
    });
    const found = `${photo.faces_found} face${photo.faces_found === 1 ? "" : "s"} found`;
    const used = photo.face === null ? `using ${photo.reason}` : `using face ${photo.face} (${photo.reason})`;
    const hint = photo.faces_found > 1 ? " · click a box to use another face" : "";
    result.querySelector(`[data-face-caption="${n}"]`).textContent = `${found} · ${used}${hint}`;
    const warnings = result.querySelector(`[data-face-warnings="${n}"]`);
    warnings.replaceChildren(...photo.warnings.map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }));
    warnings.hidden = photo.warnings.length === 0;
  }

  function showUpload(upload) {
    result.hidden = false;
    upload.photos.forEach((photo, index) => {
      const n = index + 1;
      result.querySelector(`[data-photo="${n}"]`).src = photo.photo_url;
      result.querySelector(`[data-aligned="${n}"]`).src = photo.aligned_url;
      result.querySelector(`[data-photo-caption="${n}"]`).textContent =
        `${photo.name} · ${photo.width} × ${photo.height} · ${photo.detected ? "face detected" : "face box assumed"}`;
      drawFaces(n, photo);
    });
    const verdict = document.getElementById("verdict");
    verdict.textContent = upload.same ? "Same person" : "Different people";
    verdict.className = `verdict ${upload.same ? "same" : "different"}`;
    document.getElementById("fact-distance").textContent = xfv.format(upload.distance, 4);
    document.getElementById("fact-threshold").textContent = xfv.format(upload.threshold, 4);
    document.getElementById("fact-cscore").textContent = upload.cscore === null
      ? "– (no calibration for this model)"
      : `${xfv.format(upload.cscore, 3)} (probability the decision is right` +
        (upload.quality === null ? ")" : `, at pair quality ${xfv.format(upload.quality, 3)})`);
    document.getElementById("fact-model").textContent = upload.model;
    document.getElementById("fact-source").textContent = upload.threshold_source;
    const scale = Math.max(2 * upload.threshold, upload.distance * 1.1, 0.01);
    result.querySelector(".gauge-threshold").style.left = `${(upload.threshold / scale) * 100}%`;
    result.querySelector(".gauge-marker").style.left = `${Math.min(upload.distance / scale, 1) * 100}%`;
  }

  let newest = 0;  // the newest submission: an older one's X-Map job no longer updates the page

  /* The X-Maps of an upload: its job's progress, the coarse levels' maps as soon as each is done
     (largest patches first), then the final maps. */
  async function showMaps(upload, submission) {
    const current = () => submission === newest;
    const status = document.getElementById("upload-progress");
    const holder = document.getElementById("upload-viewer");
    status.hidden = false;
    status.classList.remove("failed");
    holder.hidden = true;
    const progress = status.querySelector("[data-progress]");
    const message = status.querySelector("[data-message]");
    message.textContent = "Computing X-Maps, largest patches first: every occluded face goes through the model…";
    const root = holder.querySelector("[data-xmap-viewer]");
    root.dataset.id = upload.id;
    const viewer = root.xmapViewer || new XMapViewer(root);
    viewer.id = upload.id;
    let levels = [];
    try {
      if (upload.job) {
        await xfv.pollJob(upload.job, (job) => {
          if (!current()) return;
          const info = job.info || {};
          const done = info.patch_sizes_done || [];
          levels = info.patch_sizes || levels;
          if (done.length && done.length < levels.length && job.status === "running") {
            status.hidden = true;  // the viewer shows the coarse maps, with the progress beneath
            holder.hidden = false;
            viewer.showLevel(job);
          }
          const level = levels.length ? ` · level ${Math.min(done.length + 1, levels.length)} of ${levels.length}` : "";
          xfv.setProgress(holder.hidden ? progress : viewer.progress, job.progress,
            `${Math.round(job.progress * 100)} %${level} · ${job.done} of ${job.total} forward passes`);
        });
      }
      if (!current()) return;
      status.hidden = true;
      holder.hidden = false;
      viewer.level = "";
      delete root.dataset.level;
      if (levels.length) viewer.patchSizes([...levels].sort((a, b) => a - b));
      viewer.render();
      result.dataset.state = "done";
    } catch (error) {
      if (!current()) return;
      viewer.level = "";
      status.classList.add("failed");
      message.textContent = `Computing the X-Maps failed: ${error.message}`;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(tooLarge());
    if (!errorBox.hidden) return;
    const submission = ++newest;
    submit.disabled = true;
    submit.textContent = "Finding faces…";
    result.dataset.state = "running";
    let upload;
    try {
      upload = await xfv.request(form.action, { method: "POST", body: new FormData(form) });
    } catch (error) {
      if (submission === newest) {
        result.hidden = true;
        showError(error.message);
      }
      return;
    } finally {
      if (submission === newest) {  // the decision is shown at once; the form is free while the maps compute
        submit.disabled = false;
        submit.textContent = "Verify and explain";
      }
    }
    if (submission !== newest) return;
    showUpload(upload);
    await showMaps(upload, submission);
  });
});
