// A group's parts under its card's bar: one small bar each, with its state.

import { format, isNumber, setBarValue } from "progressbar";

export class PartsList {
  /** @param {HTMLOListElement} list the card's empty, hidden `<ol>` */
  constructor(list) {
    this.list = list;
  }

  /** Show `children` (a group snapshot's), or hide the list for a single task. */
  render(children) {
    const { list } = this;
    list.hidden = !Array.isArray(children) || children.length === 0;
    if (list.hidden) return;
    while (list.children.length > children.length) list.lastElementChild.remove();
    children.forEach((child, index) => {
      const item = list.children[index] ?? this.#add(index);
      const percent = isNumber(child.percent) ? child.percent : 0;
      item.dataset.state = String(child.state);
      setBarValue(item.querySelector("progress"), percent);
      const label = item.querySelector(".task-child-label");
      label.textContent = `Part ${index + 1}: ${child.state} ${format.percent(percent)}`;
    });
  }

  #add(index) {
    const doc = this.list.ownerDocument;
    const item = doc.createElement("li");
    item.className = "task-child";
    const bar = doc.createElement("progress");
    bar.max = 100;
    bar.setAttribute("aria-label", `Part ${index + 1}`);
    const label = doc.createElement("span");
    label.className = "task-child-label";
    item.append(bar, label);
    this.list.append(item);
    return item;
  }
}
