// Shared by the kit's widgets: jmoshi_nb/widgets/labelled.py puts it before each widget's own ESM
// (anywidget loads one module per widget), as labelled.css before its CSS.

/** A DOM element. `props`: a class name, or {class, onEVENT: handler, attribute: value}; `children`:
 *  nodes and strings (one string alone is the element's text). */
function h(tag, props = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(typeof props === "string" ? { class: props } : props)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  e.append(...(typeof children === "string" ? [children] : children));
  return e;
}

/** The base of a widget's view (like LabelledWidget in Python): its model, its element, its labels. */
class LabelledView {
  constructor(model, el) {
    this.model = model;
    this.el = el;
  }

  /** The text of a label, in the widget's language (picked in Python). */
  L(key) {
    return this.model.get("labels")[key] ?? key;
  }
}
