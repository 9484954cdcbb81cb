// The walk through the taxonomy's nodes, as the page runs it. Given the taxonomy served at
// /api/config and the answers so far, it says what comes next. No DOM here, so the tests can
// run this very file under Node and check every walk against the server's own rules.
"use strict";

const walk = {
  lastNode(taxonomy) { return taxonomy.nodes[taxonomy.nodes.length - 1]; },

  // The unsafe labels of the last node, in the order keys 1..4 pick them.
  unsafeLeaves(taxonomy) {
    return walk.lastNode(taxonomy).labels.filter((id) => !taxonomy.labels[id].safe);
  },

  // {ask: node} for the next question, {leaf: true} when an unsafe kind must be picked,
  // {submit: true} when the answers decide the label.
  next(taxonomy, answers) {
    const nodes = taxonomy.nodes;
    for (let i = 0; i < answers.length; i++) {
      const fires = answers[i] === nodes[i].fires_on;
      if (i < nodes.length - 1) {
        if (fires) return { submit: true };
      } else {
        return fires ? { leaf: true } : { submit: true };
      }
    }
    return { ask: nodes[answers.length] };
  },
};

if (typeof module !== "undefined") module.exports = walk;
