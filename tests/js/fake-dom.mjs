// Just enough of the DOM for the bar's tests: elements with classes,
// attributes, text and children. Text is kept as text nodes, never parsed.

class FakeText {
  constructor(text) {
    this.data = String(text);
    this.parentNode = null;
  }

  get textContent() {
    return this.data;
  }
}

class FakeElement {
  constructor(document, tag) {
    this.ownerDocument = document;
    this.tagName = tag.toUpperCase();
    this.childNodes = [];
    this.parentNode = null;
    this.attributes = new Map();
    this.dataset = {};
    this.style = {};
    this.hidden = false;
    this.className = "";
    this.id = "";
  }

  get children() {
    return this.childNodes.filter((node) => node instanceof FakeElement);
  }

  get textContent() {
    return this.childNodes.map((node) => node.textContent).join("");
  }

  set textContent(text) {
    this.replaceChildren(String(text));
  }

  // <progress>: `value` is its content attribute; without it, indeterminate.
  get value() {
    return this.attributes.has("value") ? Number(this.attributes.get("value")) : 0;
  }

  set value(value) {
    this.attributes.set("value", String(value));
  }

  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }

  getAttribute(name) {
    return this.attributes.get(name) ?? null;
  }

  hasAttribute(name) {
    return this.attributes.has(name);
  }

  removeAttribute(name) {
    this.attributes.delete(name);
  }

  append(...nodes) {
    for (const node of nodes) {
      const child = typeof node === "string" ? new FakeText(node) : node;
      if (child instanceof FakeFragment) {
        this.append(...child.childNodes.splice(0));
        continue;
      }
      child.parentNode?.removeChild(child);
      child.parentNode = this;
      this.childNodes.push(child);
    }
  }

  replaceChildren(...nodes) {
    for (const node of this.childNodes) node.parentNode = null;
    this.childNodes = [];
    this.append(...nodes);
  }

  removeChild(child) {
    this.childNodes = this.childNodes.filter((node) => node !== child);
    child.parentNode = null;
  }

  contains(other) {
    return other === this || this.childNodes.some((node) => node instanceof FakeElement && node.contains(other));
  }

  /** Only `.class` selectors: the first match, depth first. */
  querySelector(selector) {
    const name = selector.replace(/^\./, "");
    for (const child of this.children) {
      if (child.className.split(" ").includes(name)) return child;
      const found = child.querySelector(selector);
      if (found) return found;
    }
    return null;
  }
}

class FakeFragment extends FakeElement {}

export class FakeDocument {
  createElement(tag) {
    return new FakeElement(this, tag);
  }

  createDocumentFragment() {
    return new FakeFragment(this, "#fragment");
  }
}
