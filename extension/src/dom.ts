/** Small DOM helpers: elements built from text (never from HTML strings, so no markup from
 * MLflow tags or run names is ever interpreted). */

type Child = Node | string | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | number | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (key === 'className') {
      node.className = String(value);
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

export function button(label: string, onClick: () => void, attrs: Record<string, string> = {}): HTMLButtonElement {
  const node = el('button', { className: 'jp-Button wb-button', type: 'button', ...attrs }, label);
  node.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return node;
}

/** A link that opens an MLflow page in a new tab. */
export function external(href: string | null | undefined, text: string): HTMLElement {
  if (!href) {
    return el('span', {}, text);
  }
  return el('a', { href, target: '_blank', rel: 'noopener noreferrer', className: 'wb-external' }, text);
}

export function table(headers: string[], rows: Node[][], className = ''): HTMLTableElement {
  return el(
    'table',
    { className: `wb-table ${className}` },
    el('thead', {}, el('tr', {}, ...headers.map(h => el('th', {}, h)))),
    el('tbody', {}, ...rows.map(cells => el('tr', {}, ...cells.map(c => (c instanceof HTMLTableCellElement ? c : el('td', {}, c))))))
  );
}

export function section(title: string, id: string, ...children: Child[]): HTMLElement {
  return el('section', { className: 'wb-section', id }, el('h3', { className: 'wb-section-title' }, title), ...children);
}

export function replace(node: HTMLElement, ...children: Child[]): void {
  node.replaceChildren(...children.filter((c): c is Node | string => !!c));
}
