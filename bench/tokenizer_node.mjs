// tokenizer_node.mjs times @huggingface/tokenizers (tokenizers.js) on the
// Opticks text with the fixtures of tensor/nn/hf/testdata/tokenizer and
// writes the ids it produced, for bench/tokenizer_compare.sh.
//
//	node tokenizer_node.mjs FIXTURES OPTICKS OUTDIR NAME...
//
// Prints "NAME/opticks MB/s" and "NAME/paragraphs MB/s" per tokenizer: the
// best of several encodes of the whole text, and of its paragraphs one by
// one, after one warm-up encode (which fills the pre-token cache, as the
// Go benchmark's first iterations do).
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";

const req = createRequire(path.join(process.cwd(), "x.cjs"));
const { Tokenizer } = req("@huggingface/tokenizers");
const [fixtures, opticks, outdir, ...names] = process.argv.slice(2);
const text = fs.readFileSync(opticks, "utf8");
const mb = Buffer.byteLength(text) / 1e6;
const paras = text.split("\n\n");
const mbParas = (Buffer.byteLength(text) - 2 * (paras.length - 1)) / 1e6;
// best returns the fastest of a few runs of f, in seconds.
function best(f) {
  let b = Infinity;
  const deadline = Date.now() + 5000;
  for (let i = 0; i < 3 || (i < 20 && Date.now() < deadline); i++) {
    const t0 = process.hrtime.bigint();
    f();
    b = Math.min(b, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return b;
}
for (const name of names) {
  const dir = path.join(fixtures, name);
  const tj = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(dir, "tokenizer.json.gz"))));
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const tok = new Tokenizer(tj, cfg);
  const ids = tok.encode(text, { add_special_tokens: false }).ids;
  fs.writeFileSync(path.join(outdir, name + ".json"), JSON.stringify(ids));
  const whole = best(() => tok.encode(text, { add_special_tokens: false }));
  console.log(name + "/opticks", (mb / whole).toFixed(2));
  const each = best(() => { for (const p of paras) tok.encode(p, { add_special_tokens: false }); });
  console.log(name + "/paragraphs", (mbParas / each).toFixed(2));
}
