// Upload page: files, folders and ZIPs, chosen or dropped, sent one by one to POST /instances (the REST
// route, which stores DICOM and unpacks ZIPs) with a progress bar each and overall, then a summary with links
// to the studies stored. Names and answers are untrusted text: only ever set with textContent.
(function () {
  "use strict";
  var PARALLEL = 3;

  function $(id) { return document.getElementById(id); }

  // As the pages show them (explorer/ui/browser.py): DOE^JOHN -> DOE, JOHN; 20240131 -> 2024-01-31
  function personName(value) {
    var parts = String(value || "").split("=")[0].split("^").filter(function (p) { return p; });
    return parts.length >= 2 ? parts[0] + ", " + parts.slice(1).join(" ") : (parts[0] || "");
  }

  function dicomDate(value) {
    return /^\d{8}$/.test(value) ? value.slice(0, 4) + "-" + value.slice(4, 6) + "-" + value.slice(6) : value;
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function size(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1048576) return (bytes / 1024).toFixed(1) + " KB";
    return (bytes / 1048576).toFixed(1) + " MB";
  }

  // Every file of a dropped folder, depth first (readEntries answers in batches until an empty one).
  function walk(entry, path, out) {
    return new Promise(function (resolve) {
      if (entry.isFile) {
        entry.file(function (file) { out.push({file: file, name: path + file.name}); resolve(); }, function () { resolve(); });
      } else if (entry.isDirectory) {
        var reader = entry.createReader();
        var next = function () {
          reader.readEntries(function (batch) {
            if (!batch.length) { resolve(); return; }
            Promise.all(batch.map(function (child) { return walk(child, path + entry.name + "/", out); })).then(next);
          }, function () { resolve(); });
        };
        next();
      } else {
        resolve();
      }
    });
  }

  function Upload() {
    this.queue = [];
    this.total = 0;
    this.sent = 0;
    this.files = 0;
    this.done = 0;
    this.running = 0;
    this.counts = {stored: 0, already: 0, refused: 0};
    this.studies = {};
  }

  Upload.prototype.add = function (items) {
    var list = $("upload-files-list");
    var self = this;
    $("upload-progress").hidden = false;
    $("upload-summary").hidden = false;
    items.forEach(function (item) {
      var row = el("li", "upload-item");
      var name = el("span", "name", item.name);
      var bar = el("progress");
      bar.max = item.file.size || 1;
      bar.value = 0;
      bar.setAttribute("aria-label", "Upload of " + item.name);
      var result = el("span", "result", "Waiting");
      row.append(name, bar, result);
      list.appendChild(row);
      item.bar = bar;
      item.result = result;
      item.row = row;
      item.loaded = 0;
      self.total += item.file.size;
      self.files += 1;
      self.queue.push(item);
    });
    this.overall();
    this.pump();
  };

  Upload.prototype.overall = function () {
    var bar = $("upload-overall");
    bar.max = this.total || 1;
    bar.value = this.sent;
    $("upload-overall-text").textContent = this.done + " of " + this.files + " files, " + size(this.sent) +
      " of " + size(this.total) + (this.done === this.files ? " — done" : "");
  };

  Upload.prototype.pump = function () {
    while (this.running < PARALLEL && this.queue.length) {
      this.running += 1;
      this.send(this.queue.shift());
    }
  };

  Upload.prototype.count = function (key, n) {
    this.counts[key] += n;
    var node = document.querySelector('#upload-summary [data-count="' + key + '"]');
    if (node) node.textContent = String(this.counts[key]);
  };

  Upload.prototype.refuse = function (name, why) {
    this.count("refused", 1);
    var li = el("li");
    li.append(el("span", "name", name), document.createTextNode(": "), el("span", "error", why));
    $("upload-refused").appendChild(li);
  };

  Upload.prototype.study = function (id) {
    if (!id) return;
    if (this.studies[id]) {
      this.studies[id].n += 1;
      this.studies[id].count.textContent = " (" + this.studies[id].n + " instances)";
      return;
    }
    var li = el("li");
    var a = el("a", null, "Study " + id);
    a.href = "/ui/studies/" + encodeURIComponent(id);
    var count = el("span", "muted", " (1 instance)");
    this.studies[id] = {n: 1, count: count};
    li.append(a, count);
    $("upload-studies").appendChild(li);
    // Name the link after the study once its tags are known.
    fetch("/studies/" + encodeURIComponent(id), {credentials: "same-origin"}).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (s) {
      if (!s) return;
      var patient = personName((s.PatientMainDicomTags || {}).PatientName) || "(no name)";
      var desc = (s.MainDicomTags || {}).StudyDescription || "(no description)";
      var date = dicomDate((s.MainDicomTags || {}).StudyDate || "");
      a.textContent = patient + " · " + desc + (date ? " · " + date : "");
    }).catch(function () { /* the ID stays */ });
  };

  Upload.prototype.finish = function (item, text, cls) {
    item.result.textContent = text;
    item.row.classList.add(cls);
    item.bar.value = item.bar.max;
    this.sent += item.file.size - item.loaded;
    item.loaded = item.file.size;
    this.done += 1;
    this.running -= 1;
    this.overall();
    this.pump();
  };

  Upload.prototype.send = function (item) {
    var self = this;
    var xhr = new XMLHttpRequest();
    item.result.textContent = "Sending";
    xhr.open("POST", "/instances");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = function (event) {
      if (!event.lengthComputable) return;
      var loaded = Math.min(event.loaded, item.file.size);
      self.sent += loaded - item.loaded;
      item.loaded = loaded;
      item.bar.value = loaded;
      self.overall();
    };
    xhr.onload = function () {
      var answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
      if (xhr.status !== 200 || answer === null) {
        var why = (answer && (answer.Details || answer.Message)) || ("HTTP " + xhr.status);
        self.refuse(item.name, why);
        self.finish(item, "Refused: " + why, "refused");
        return;
      }
      var answers = Array.isArray(answer) ? answer : [answer];
      var stored = 0, already = 0;
      answers.forEach(function (a) {
        if (a.Status === "Success") stored += 1;
        else if (a.Status === "AlreadyStored") already += 1;
        if (a.Status === "Success" || a.Status === "AlreadyStored") self.study(a.ParentStudy);
      });
      var refused = answers.length - stored - already;
      self.count("stored", stored);
      self.count("already", already);
      if (refused) self.refuse(item.name, refused + " instance(s) filtered out");
      if (!answers.length) {
        self.refuse(item.name, "no DICOM file in the archive");
        self.finish(item, "Refused: no DICOM file", "refused");
        return;
      }
      var parts = [];
      if (stored) parts.push(stored + " stored");
      if (already) parts.push(already + " already stored");
      if (refused) parts.push(refused + " refused");
      self.finish(item, parts.join(", "), refused && !stored && !already ? "refused" : "ok");
    };
    xhr.onerror = function () {
      self.refuse(item.name, "network error");
      self.finish(item, "Refused: network error", "refused");
    };
    xhr.send(item.file);
  };

  document.addEventListener("DOMContentLoaded", function () {
    var form = $("upload-form");
    if (!form) return;
    var upload = new Upload();
    var zone = $("dropzone");
    var files = $("upload-files");
    var folder = $("upload-folder");
    $("drop-hint").hidden = false;
    $("folder-picker").hidden = false;
    $("upload-submit").hidden = true;   // choosing starts the upload
    zone.classList.add("active");

    function fromInput(input) {
      var items = Array.prototype.map.call(input.files, function (f) {
        return {file: f, name: f.webkitRelativePath || f.name};
      });
      input.value = "";
      if (items.length) upload.add(items);
    }
    files.addEventListener("change", function () { fromInput(files); });
    folder.addEventListener("change", function () { fromInput(folder); });
    form.addEventListener("submit", function (event) { event.preventDefault(); fromInput(files); });

    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("over");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      var out = [];
      var dt = event.dataTransfer;
      var entries = [];
      // Folders come as entries (walked here); a browser without entries, or a synthetic drop, gives files.
      for (var i = 0; dt.items && i < dt.items.length; i++) {
        var entry = dt.items[i].webkitGetAsEntry ? dt.items[i].webkitGetAsEntry() : null;
        if (entry) entries.push(entry);
      }
      if (entries.length) {
        Promise.all(entries.map(function (e) { return walk(e, "", out); })).then(function () {
          if (out.length) upload.add(out);
        });
      } else {
        Array.prototype.forEach.call(dt.files, function (f) { out.push({file: f, name: f.name}); });
        if (out.length) upload.add(out);
      }
    });
  });
})();
