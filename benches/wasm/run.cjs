// Times the stream translators compiled to wasm (benches/wasm/translate.rs) in Node's V8, the
// engine workerd runs the Worker in. Run by benches/wasm/run.sh, which builds the module;
// prints Markdown. Per translator: ns per event looped inside the module, and ns per event
// called from JavaScript with the event's bytes (what the Worker pays per upstream chunk of a
// translated stream, before the runtime's own reading and writing).
"use strict";
const { Bench } = require(process.argv[2]);

const EVENTS = Number(process.env.EVENTS || 200000);
const ROUNDS = Number(process.env.ROUNDS || 7);

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// ns per event of `run(n)`, the median of ROUNDS after a warm-up.
function time(run) {
  run(EVENTS / 4);
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    run(EVENTS);
    rounds.push(Number(process.hrtime.bigint() - start) / EVENTS);
  }
  return median(rounds);
}

console.log(`## Stream translators in wasm (Node ${process.version}, V8 ${process.versions.v8}; ${EVENTS} events, median of ${ROUNDS})`);
console.log();
console.log("| translator | ns per event, inside the module | ns per event, one call from JavaScript each |");
console.log("|---|---:|---:|");
for (const which of ["pass-through", "anthropic", "gemini", "front-anthropic"]) {
  const inside = new Bench(which);
  const insideNs = time((n) => inside.inside(n));
  const called = new Bench(which);
  const event = called.event();
  let written = 0;
  const calledNs = time((n) => {
    for (let i = 0; i < n; i++) written += called.chunk(event).length;
  });
  if (written === 0) throw new Error(`${which}: no output`);
  console.log(`| ${which} | ${insideNs.toFixed(0)} | ${calledNs.toFixed(0)} |`);
}
