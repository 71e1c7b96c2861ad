// Palisade overview: signs in through the user API and lists hosts, events and vulnerabilities.
"use strict";
let csrf = sessionStorage.getItem("csrf") || "";

async function api(path, opts = {}) {
  opts.headers = Object.assign({"Content-Type": "application/json"}, opts.headers || {});
  if (csrf) opts.headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, opts);
  if (r.status === 401) { show(false); throw new Error("signed out"); }
  const body = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error(body && body.error || r.statusText);
  return body;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function when(t) { return t ? new Date(t).toLocaleString() : "never"; }

async function refresh() {
  const hosts = await api("/api/v1/hosts");
  const hb = document.getElementById("hosts");
  hb.replaceChildren();
  for (const h of hosts.items) {
    const tr = document.createElement("tr");
    cell(tr, h.hostname); cell(tr, h.id); cell(tr, h.group);
    cell(tr, h.facts.os_pretty || "");
    cell(tr, h.revoked_at ? "revoked" : (h.online ? "online" : "offline"), h.online ? "online" : "offline");
    cell(tr, when(h.last_seen));
    hb.appendChild(tr);
  }
  const events = await api("/api/v1/events?limit=50");
  const eb = document.getElementById("events");
  eb.replaceChildren();
  for (const e of events.items) {
    const tr = document.createElement("tr");
    cell(tr, e.severity, "sev-" + e.severity); cell(tr, e.title); cell(tr, e.hostname || e.host_id);
    cell(tr, String(e.count)); cell(tr, when(e.last_seen)); cell(tr, e.status);
    eb.appendChild(tr);
  }
  const emergencies = await api("/api/v1/vulns/emergency");
  const mb = document.getElementById("emergencies");
  mb.replaceChildren();
  for (const e of emergencies.items) {
    const tr = document.createElement("tr");
    cell(tr, e.name); cell(tr, e.id); cell(tr, String(e.hosts), e.hosts ? "sev-critical" : "");
    cell(tr, String(e.accepted_hosts)); cell(tr, e.advisories.join(", "));
    mb.appendChild(tr);
  }
  const vulns = await api("/api/v1/vulns?limit=50");
  const vb = document.getElementById("vulns");
  vb.replaceChildren();
  for (const v of vulns.items) {
    const tr = document.createElement("tr");
    cell(tr, v.emergency ? v.advisory + " (" + v.emergency + ")" : v.advisory);
    cell(tr, v.score ? v.severity + " " + v.score.toFixed(1) : v.severity, "sev-" + v.severity);
    cell(tr, String(v.hosts)); cell(tr, String(v.accepted_hosts)); cell(tr, v.fixable ? "available" : "none yet");
    cell(tr, (v.packages || []).join(", ")); cell(tr, (v.aliases || []).join(", "));
    vb.appendChild(tr);
  }
}

function show(signedIn) {
  document.getElementById("login").hidden = signedIn;
  document.getElementById("overview").hidden = !signedIn;
  document.getElementById("logout").hidden = !signedIn;
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("login-error");
    err.textContent = "";
    try {
      const r = await api("/api/v1/login", {method: "POST", body: JSON.stringify({
        user: document.getElementById("user").value, password: document.getElementById("password").value})});
      csrf = r.csrf_token; sessionStorage.setItem("csrf", csrf);
      document.getElementById("who").textContent = r.user + " (" + r.role + ")";
      show(true); refresh();
    } catch (e) { err.textContent = e.message; }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try { await api("/api/v1/logout", {method: "POST"}); } finally { csrf = ""; sessionStorage.removeItem("csrf"); show(false); }
  });
  try {
    const me = await api("/api/v1/me");
    document.getElementById("who").textContent = me.name + " (" + me.role + ")";
    show(true); refresh();
  } catch (e) { show(false); }
  setInterval(() => { if (!document.getElementById("overview").hidden) refresh().catch(() => {}); }, 10000);
});
