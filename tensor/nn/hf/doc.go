// Package hf reads what a Hugging Face model directory ships besides its
// weights: the tokenizer (tokenizer.json, tokenizer_config.json) and the
// chat template, in pure Go, with the ids transformers produces.
//
// # Tokenizers
//
// LoadTokenizer reads the tokenizer of a model directory, and Encode turns
// text into the ids transformers' tokenizer(text, add_special_tokens=False)
// returns; AddSpecial adds the BOS/EOS that add_special_tokens=True adds,
// Decode goes back. A tokenizer.json describes a pipeline, and Encode runs
// it stage by stage as the tokenizers crate does:
//
//  1. Added tokens (special ones such as <|im_start|> and any others) are
//     cut out of the text first, leftmost and longest first, with their
//     lstrip/rstrip/single_word flags; normalized ones are looked for after
//     normalization. They get their ids directly: a chat template's
//     special tokens written in the text are never split.
//  2. The normalizer rewrites the rest: NFC for Qwen2, Prepend("▁") and
//     Replace(" ", "▁") for Llama 2 and Mistral.
//  3. The pre-tokenizer cuts it into pre-tokens. Byte-level models (GPT-2,
//     Llama 3, Qwen2, SmolLM) split on a regular expression — GPT-2's
//     's|'t|… ?\p{L}+| ?\p{N}+|…|\s+(?!\S)|\s+, Llama 3's variant with
//     numbers in groups of three and case-insensitive contractions, Qwen2's
//     with one digit a token — then read each pre-token as bytes, each byte
//     standing for a printable character (GPT-2's byte-to-unicode map), so
//     no text is ever out of vocabulary. The lookahead (?!\S) and (?i:…)
//     are beyond Go's regexp: the three patterns have hand-written matchers,
//     checked against the backtracking engine regexp2 on random text; any
//     other pattern runs on regexp2. SentencePiece-style models use
//     Metaspace (spaces become ▁) or none.
//  4. The BPE model splits each pre-token into characters (bytes for
//     byte-level models) and merges the adjacent pair of lowest rank until
//     none has a rank (Sennrich et al. 2016, "Neural Machine Translation of
//     Rare Words with Subword Units"), with a heap of candidate merges and
//     a linked list of symbols, so a long word costs n log n, not n². A
//     character missing from a SentencePiece vocabulary falls back to its
//     UTF-8 bytes as <0xXX> tokens (byte_fallback). ignore_merges (Llama 3)
//     takes a pre-token that is itself in the vocabulary whole. Results are
//     cached per pre-token.
//
// Decode maps ids to tokens and runs the decoder: ByteLevel maps the
// characters back to bytes; ByteFallback, Replace("▁", " "), Fuse and
// Strip undo the SentencePiece layout. Bytes that are not valid UTF-8
// become U+FFFD, as in the tokenizers crate. Decode writes special tokens
// out and does not apply transformers' clean_up_tokenization_spaces, so
// for byte-level tokenizers Decode(Encode(s)) == s for every valid UTF-8
// string s.
//
// Components this package does not implement — WordPiece, Unigram and
// WordLevel models, BPE dropout, other normalizers, pre-tokenizers,
// decoders and post-processors — make LoadTokenizer fail with an error
// that names them: a tokenizer that differs from the model's by one id
// silently poisons training, so nothing is approximated.
//
// # Chat templates
//
// A chat model was trained on conversations laid out in one exact text
// format, which its tokenizer_config.json (or chat_template.jinja) gives
// as a Jinja template over a list of messages. ApplyChatTemplate renders
// it as transformers' apply_chat_template does — trim_blocks and
// lstrip_blocks on, bos_token and eos_token defined, add_generation_prompt
// appending the opening of an assistant turn — through
// github.com/ardanlabs/jinja, a Jinja engine written for chat templates
// (namespace(), loops, slices, string methods, filters, raise_exception).
// EncodeChat renders and encodes without adding special tokens, since
// the template writes them: it is how SFT examples and preference pairs
// become ids. A template the engine cannot compile or render returns an
// error; a template's own raise_exception returns its message.
//
// # Checks
//
// The ids, the decoded text and the special tokens are compared, on a
// text set with whitespace runs, CRLF, tabs, contractions in several
// cases, long numbers, accents, CJK, emoji sequences and flags, unicode
// spaces, code, special tokens inside text and long repeats, with those
// of tokenizers.js (@huggingface/tokenizers, the tokenizer of
// transformers.js) on real vocabularies: GPT-2, Llama 3.1, Qwen2 (its
// first 30000 merges) and Mistral's SentencePiece BPE in both layouts
// (testdata/tokenizer/gen.mjs). Chat templates of SmolLM2, Qwen2.5, Qwen3,
// Llama 3 and the Llama 2 shape are rendered against @huggingface/jinja
// (testdata/chat/gen.mjs). bench/tokenizer_compare.sh times both on the
// Opticks text and checks that the whole text gets the same ids.
package hf
