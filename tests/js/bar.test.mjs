// ProgressBar on a fake DOM: what it shows, what it announces, and the
// figures and parts a host page composes it with.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ProgressBar } from "../../progressbar/static/bar.js";
import { figureText } from "../../progressbar/static/figures.js";
import { FakeDocument } from "./fake-dom.mjs";
import { snap } from "./helpers.mjs";

/** A bar in a fresh element, on a clock the test moves (ms). */
function makeBar(options = {}) {
  const document = new FakeDocument();
  const host = document.createElement("div");
  const clock = { ms: 1000 };
  const bar = new ProgressBar(host, { now: () => clock.ms, ...options });
  return { bar, host, clock, document };
}

test("the default bar: the markup, the value, the texts, one announcement per state", () => {
  const { bar, host } = makeBar({ label: "Export" });
  const { parts } = bar;
  assert.equal(host.children[0], bar.root);
  assert.equal(bar.root.className, "pb");
  assert.deepEqual(bar.root.children.map((el) => el.className), [
    "pb-head", "pb-bar", "pb-figures", "pb-result", "pb-error", "pb-live",
  ]);
  assert.equal(parts.bar.getAttribute("aria-labelledby"), parts.label.id);
  assert.equal(parts.live.getAttribute("aria-live"), "polite");
  assert.equal(parts.count, undefined, "no figure unless asked for");

  bar.render(snap("a", 4, "running", { percent: 42.7 }));
  assert.equal(bar.root.dataset.state, "running");
  assert.equal(parts.bar.getAttribute("aria-valuenow"), "42");
  assert.equal(parts.percent.textContent, "42%");
  assert.equal(parts.message.textContent, "step 4");
  assert.equal(parts.live.textContent, "Export running.");

  parts.live.textContent = "";
  bar.render(snap("a", 5, "running", { percent: 50 }));
  assert.equal(parts.live.textContent, "", "the same state is not announced again");
  bar.render(snap("a", 6, "running", { percent: 50, cancel_requested: true }));
  assert.equal(parts.state.textContent, "cancelling…");
  assert.equal(parts.live.textContent, "Export cancelling….");

  bar.render(snap("a", 7, "failed", { percent: 50, error: "Disk full" }));
  assert.equal(parts.error.textContent, "Disk full");
  assert.equal(parts.error.hidden, false);
  assert.equal(parts.result.hidden, true);
  assert.equal(parts.live.textContent, "Export failed: Disk full.");
});

test("a live task without a total shows an indeterminate bar", () => {
  const { bar } = makeBar();
  bar.render(snap("a", 2, "running", { percent: null }));
  assert.equal(bar.parts.bar.hasAttribute("value"), false);
  assert.equal(bar.parts.bar.hasAttribute("aria-valuenow"), false);
  assert.equal(bar.parts.percent.textContent, "—");
});

test("figures: a count beside the message, rate, ETA and elapsed in a list, in the order asked", () => {
  const { bar } = makeBar({ figures: ["count", "elapsed", "rate", "eta"] });
  const { parts } = bar;
  assert.equal(parts.count.parentNode, parts.figures);
  assert.deepEqual(parts.stats.children.map((stat) => stat.textContent), ["Elapsed", "Rate", "ETA"]);
  bar.render(snap("a", 3, "running", { current: 420, total: 1000, rate: 3.4, eta: 10, elapsed: 65 }));
  assert.equal(parts.count.textContent, `${(420).toLocaleString()} / ${(1000).toLocaleString()}`);
  assert.equal(parts.rate.textContent, "3.4/s");
  assert.equal(parts.eta.textContent, "10s");
  assert.equal(parts.elapsed.textContent, "1m 05s");
});

test("tick: between snapshots a running task's elapsed runs on and its ETA counts down", () => {
  const { bar, clock } = makeBar({ figures: ["eta", "elapsed"] });
  bar.tick(); // nothing rendered yet: nothing to move
  assert.equal(bar.age(), null);
  bar.render(snap("a", 3, "running", { eta: 10, elapsed: 5 }));
  clock.ms += 3500;
  bar.tick();
  assert.equal(bar.age(), 3.5);
  assert.equal(bar.parts.eta.textContent, "7s");
  assert.equal(bar.parts.elapsed.textContent, "8s");
  bar.render(snap("a", 4, "succeeded", { eta: null, elapsed: 8.24 }));
  clock.ms += 5000;
  bar.tick();
  assert.equal(bar.parts.eta.textContent, "—");
  assert.equal(bar.parts.elapsed.textContent, "8.2s", "a finished task's time stands still");
});

test("figure texts: no count before anything was counted; a queued task's time does not run", () => {
  assert.equal(figureText("count", snap("a", 1, "queued", { current: 0, total: null })), "");
  assert.equal(figureText("count", snap("a", 1, "running", { current: 7, total: null })), "7");
  assert.equal(figureText("elapsed", snap("a", 1, "queued", { elapsed: 0 }), 9), "0s");
  assert.equal(figureText("rate", snap("a", 1, "running", { rate: null })), "—");
});

test("an unknown figure is refused at once", () => {
  assert.throws(() => makeBar({ figures: ["speed"] }), TypeError);
});

test("a label node shows as given; its text is what is announced", () => {
  const document = new FakeDocument();
  const label = document.createDocumentFragment();
  const id = document.createElement("span");
  id.textContent = "#ab12cd";
  label.append("Simulate ", id);
  const host = document.createElement("div");
  const bar = new ProgressBar(host, { label });
  assert.equal(bar.parts.label.children[0], id);
  bar.render(snap("a", 1, "queued"));
  assert.equal(bar.parts.live.textContent, "Simulate #ab12cd queued.");
});

test("announcer: the bar speaks into the page's region; announce: false shows a state silently", () => {
  const document = new FakeDocument();
  const announcer = document.createElement("div");
  const { bar } = makeBar({ label: "Export", announcer });
  assert.equal(bar.parts.live, undefined, "no region of its own");
  assert.ok(!bar.root.children.some((el) => el.className === "pb-live"));
  bar.render(snap("a", 2, "running"), { announce: false });
  assert.equal(announcer.textContent, "");
  bar.render(snap("a", 3, "running"));
  assert.equal(announcer.textContent, "", "still the state shown silently");
  bar.render(snap("a", 4, "succeeded", { result: { rows: 3 } }));
  assert.equal(announcer.textContent, "Export succeeded.");
  assert.equal(bar.parts.result.textContent, '{"rows":3}');
});

test("parts moved elsewhere by the host page are still kept current", () => {
  const { bar, document } = makeBar({ figures: ["rate"] });
  const footer = document.createElement("footer");
  footer.append(bar.parts.stats);
  bar.render(snap("a", 2, "running", { rate: 12 }));
  assert.equal(footer.textContent, "Rate12/s");
});
