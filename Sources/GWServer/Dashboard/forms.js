// Entity forms: fields described as data, values turned into the Admin API's JSON body, and
// Kong's 400 answers shown where they belong: each key of `fields` under the input of that name
// (nested objects, e.g. a plugin's `config`, flattened as `key.sub: message`), the rest and
// `@entity` checks in the form's banner.
'use strict';

// spec: {fields: [{name, label, type, options, help, placeholder, ref, readonly}], initial, edit,
//        submitLabel, onSubmit: async body => void}
// types: text | password | number | select | bool | list | json | textarea
GW.form = function (spec) {
  const initial = spec.initial || {};
  const edit = !!spec.edit;
  const inputs = {};
  const banner = h('div', {class: 'form-banner', hidden: true});
  const rows = spec.fields.map((f) => {
    const id = 'f-' + f.name;
    let v = initial[f.name];
    if (f.ref && v && typeof v === 'object') v = v.id;
    let input;
    switch (f.type) {
      case 'select':
        input = h('select', {id, name: f.name, disabled: f.readonly},
          (f.options || []).map((o) => {
            const [value, label] = Array.isArray(o) ? o : [o, o];
            return h('option', {value, text: label, selected: v !== undefined && v !== null && String(v) === String(value)});
          }));
        if ((v === undefined || v === null) && f.default !== undefined) input.value = f.default;
        break;
      case 'bool':
        input = h('input', {id, name: f.name, type: 'checkbox', checked: v === undefined ? !!f.default : !!v});
        break;
      case 'json':
      case 'textarea':
        input = h('textarea', {id, name: f.name, rows: f.rows || 6, spellcheck: 'false', placeholder: f.placeholder,
          value: f.type === 'json' ? (v === undefined || v === null ? (f.default || '') : JSON.stringify(v, null, 2)) : (v || '')});
        break;
      case 'list':
        input = h('input', {id, name: f.name, type: 'text', placeholder: f.placeholder || 'comma-separated',
          value: Array.isArray(v) ? v.join(', ') : ''});
        break;
      default:
        input = h('input', {id, name: f.name, type: f.type === 'number' ? 'number' : (f.type || 'text'),
          placeholder: f.placeholder, readonly: f.readonly,
          value: v === undefined || v === null ? (f.default === undefined ? '' : String(f.default)) : String(v)});
    }
    inputs[f.name] = {f, input};
    const label = h('label', {for: id, text: f.label || f.name});
    const err = h('div', {class: 'field-error', id: 'error-' + f.name, role: 'alert'});
    const help = f.help ? h('div', {class: 'help', text: f.help}) : null;
    const wide = f.type === 'json' || f.type === 'textarea' || f.wide;
    return h('div', {class: 'field' + (f.type === 'bool' ? ' field-bool' : '') + (wide ? ' field-wide' : ''), 'data-field': f.name},
      f.type === 'bool' ? [input, label] : [label, input], help, err);
  });

  const submit = h('button', {class: 'primary', type: 'submit', id: 'form-submit', text: spec.submitLabel || (edit ? 'Save' : 'Create')});
  const form = h('form', {class: 'entity-form', novalidate: true}, banner, rows,
    h('div', {class: 'actions'}, h('button', {type: 'button', onclick: GW.closeModal, text: 'Cancel'}), submit));

  const clearErrors = () => {
    banner.hidden = true;
    banner.replaceChildren();
    form.querySelectorAll('.field').forEach((el) => el.classList.remove('invalid'));
    form.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
  };
  const fieldError = (name, msg) => {
    const x = inputs[name];
    if (!x) return false;
    const el = form.querySelector('#error-' + CSS.escape(name));
    el.textContent = el.textContent ? el.textContent + '; ' + msg : msg;
    el.parentElement.classList.add('invalid');
    return true;
  };
  const bannerLine = (msg) => { banner.hidden = false; banner.appendChild(h('div', {text: msg})); };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    const body = {};
    let bad = false;
    for (const [name, {f, input}] of Object.entries(inputs)) {
      if (f.readonly) continue;
      let v;
      if (f.type === 'bool') { body[name] = input.checked; continue; }
      const raw = input.value.trim();
      if (raw === '') {
        if (edit && f.type !== 'number' && f.type !== 'json') body[name] = null;
        continue;
      }
      switch (f.type) {
        case 'number': v = Number(raw); if (!Number.isFinite(v)) { fieldError(name, 'expected a number'); bad = true; continue; } break;
        case 'list': v = raw.split(/[\s,]+/).filter(Boolean); break;
        case 'json':
          try { v = JSON.parse(raw); } catch (err) { fieldError(name, 'invalid JSON: ' + err.message); bad = true; continue; }
          break;
        default: v = raw;
      }
      body[name] = f.ref ? {id: v} : v;
    }
    if (bad) return;
    submit.disabled = true;
    try {
      await spec.onSubmit(body);
    } catch (err) {
      if (!(err instanceof GW.ApiError)) throw err;
      GW.showErrors(err, fieldError, bannerLine);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
};

// Flattens one `fields` value: "msg", ["msg", ...], {sub: "msg"} → ["msg", "sub: msg", ...].
GW.flattenErrors = function (v, prefix) {
  if (v === null || v === undefined) return [];
  if (typeof v === 'string') return [prefix ? prefix + ': ' + v : v];
  if (Array.isArray(v)) return v.flatMap((x, i) => GW.flattenErrors(x, typeof x === 'string' ? prefix : (prefix ? prefix + '.' : '') + (i + 1)));
  if (typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => GW.flattenErrors(x, prefix ? prefix + '.' + k : k));
  return [String(v)];
};

GW.showErrors = function (err, fieldError, bannerLine) {
  const b = err.body || {};
  bannerLine(b.name && !err.message.startsWith(b.name) ? `${b.name}: ${err.message}` : err.message);
  const fields = b.fields && typeof b.fields === 'object' ? b.fields : {};
  for (const [k, v] of Object.entries(fields)) {
    const msgs = GW.flattenErrors(v, '');
    if (k !== '@entity' && msgs.every((m) => fieldError(k, m))) continue;
    msgs.forEach((m) => bannerLine(k === '@entity' ? m : k + ': ' + m));
  }
};

// Opens a create/edit form in the modal; `save(body)` does the request, then the view re-renders.
GW.editEntity = function (title, spec, save, after) {
  const form = GW.form(Object.assign({}, spec, {onSubmit: async (body) => {
    const r = await save(body);
    GW.closeModal();
    GW.toast(title.replace(/^(New|Edit) /, '') + (spec.edit ? ' saved' : ' created'));
    if (after) after(r); else GW.render();
  }}));
  GW.openModal(title, form);
  const first = form.querySelector('input:not([type=checkbox]):not([readonly]), select, textarea');
  if (first) first.focus();
  return form;
};

// Standard row actions: Edit and Delete buttons.
GW.rowActions = function (onEdit, onDelete) {
  return h('div', {class: 'row-actions'},
    onEdit ? h('button', {type: 'button', class: 'small', text: 'Edit', onclick: onEdit}) : null,
    onDelete ? h('button', {type: 'button', class: 'small danger-outline', text: 'Delete', onclick: onDelete}) : null);
};
