"""Cuts GPT-2's tokenizer.json (from tensor/nn/hf/testdata) down to its
byte alphabet and first 1,000 merges, for the jetstream HF test: the same
format and pre-tokenizer, a vocabulary of 1,256 that loads in milliseconds.
GPT-2's merge number r yields token id 256 + r, so the cut is consistent.

    /usr/bin/python3 gen_tokenizer.py   # writes tiny-gpt2/tokenizer.json
"""
import gzip, json, os

src = os.path.join("..", "..", "tensor", "nn", "hf", "testdata", "tokenizer", "gpt2", "tokenizer.json.gz")
with gzip.open(src, "rt", encoding="utf-8") as f:
    tok = json.load(f)
keep = 1000
merges = tok["model"]["merges"][:keep]
vocab = {t: i for t, i in tok["model"]["vocab"].items() if i < 256 + keep}
# every merge's parts and result must be in the cut vocabulary
for m in merges:
    a, b = m.split(" ") if isinstance(m, str) else m
    assert a in vocab and b in vocab and a + b in vocab, m
tok["model"]["merges"] = merges
tok["model"]["vocab"] = vocab
tok["added_tokens"] = []
os.makedirs("tiny-gpt2", exist_ok=True)
with open(os.path.join("tiny-gpt2", "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
print(len(vocab), "tokens,", len(merges), "merges")
