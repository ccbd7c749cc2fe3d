// Shared by the node-red-mnist editor files: each loads it with
// <script src="resources/@node-red-mnist/nodes/editor.js"></script> before registering its node.
window.NodeRedMnist = window.NodeRedMnist || {
  /**
   * A validator for a number option within the bounds src/nodes/options.ts gives it
   * (test/options.spec.ts keeps the two equal); blank takes the default at run time. kind: 'int',
   * 'open-min' (above min), 'open-max' (below max) or nothing. With two parameters Node-RED shows
   * the text returned, in the editor's language.
   */
  within: function (name, min, max, kind) {
    // Two parameters, even though the second is unused: Node-RED shows a validator's returned text
    // only when validate.length is 2 (with one, any text it returns counts as valid).
    return function (v, _opt) {
      var n = Number(String(v).trim());
      if (v === '' || v == null || (isFinite(n) && (kind === 'open-min' ? n > min : n >= min)
        && (kind === 'open-max' ? n < max : n <= max) && (kind !== 'int' || n % 1 === 0))) return true;
      var key = kind === 'int' ? 'errors.option-int' : kind ? 'errors.option-number-' + kind : 'errors.option-number';
      return this && this._ ? this._(key, { name: name, value: v, min: min, max: max }) : false;
    };
  }
};
