// Package hf moves Hugging Face model directories in and out of posttrain:
// a transformers checkpoint — config.json plus model.safetensors, or
// shards named by model.safetensors.index.json — becomes an nn.Model, the
// one Llama-family decoder that training, KV-cache decoding, sampling,
// pruning and checkpoints share, and a trained nn.Model goes back out in
// the same layout; the tokenizer (tokenizer.json, tokenizer_config.json)
// and the chat template are read in pure Go and give the ids transformers
// produces.
//
// # Models
//
// LoadModel implements the dense decoders transformers calls
// LlamaForCausalLM (Llama 2, 3.x, SmolLM, SmolLM2), MistralForCausalLM
// and Qwen2ForCausalLM (Qwen2, Qwen2.5), with their semantics exactly:
//
//	h  = x + o_proj(attn(RMSNorm(x)))         grouped-query attention
//	x' = h + down(silu(gate(RMSNorm(h))) ∘ up(RMSNorm(h)))
//
// where attention uses num_key_value_heads shared key/value heads, query
// head i reading key/value head i/(heads/kv_heads) (repeat_kv; Ainslie et
// al. 2023), scores scaled by head_dim^−½, and rotary embeddings in the
// split-half ("rotate_half") layout with rope_theta and an optional
// rope_scaling of type linear (Chen et al. 2023) or llama3 (Llama 3.1's
// smooth interpolation of the low frequencies). Qwen2 adds biases to the
// q, k and v projections; tie_word_embeddings makes the output head the
// embedding matrix. RoPE settings are read from rope_theta/rope_scaling
// and from transformers v5's rope_parameters. Other architectures, rope
// types, activations and biases are refused by name.
//
// # Loading
//
// Weights may be F32, BF16 or F16 (and F64). The files are memory mapped
// and each tensor is converted once into the model's float32 storage; on
// Linux each converted window of the map is released at once, so loading
// a bf16 checkpoint peaks at its float32 size plus a few megabytes of
// resident memory. Everything is validated before a weight is allocated:
// config values, every shard's header (offsets that tile the data
// exactly, so a truncated shard fails), the index against the shards,
// and each tensor's name and shape against the config. Errors name the
// file and the tensor; NaN or Inf weights are an error, never silently
// loaded.
//
// LoadModelWith(dir, LoadOptions{Dtype: "BF16"}) keeps the matrices in
// bfloat16 instead, a bfloat16 checkpoint's words as stored, so the model
// takes the checkpoint's own memory and decodes reading half the bytes;
// it is frozen (nn.Model.FreezeBF16): inference only.
//
// # Saving
//
// SaveModel writes config.json and F32 safetensors under transformers'
// names — one file, or shards of at most ShardSize bytes with an index —
// each atomically, so transformers, vLLM and llama.cpp's converter read
// it unchanged and LoadModel gets the same bits back. SaveModelWith sets
// the shard size and may store BF16 or F16 instead (rounded to nearest
// even, half the bytes). Each file records the SHA-256 of its data in
// __metadata__, and LoadModel checks it.
//
// # Checking the models
//
// testdata/gen_models.py re-implements transformers' forward pass in
// float64 PyTorch and writes tiny random checkpoints in each layout the
// loader accepts (bf16 sharded with llama3 scaling and GQA; f32 tied with
// rope_parameters; f16 Qwen2 with q/k/v bias) and their logits; the Go
// logits agree to 1e-6 relative.
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
//     are beyond Go's regexp: these three patterns and GPT-4o's (o200k)
//     have hand-written matchers, checked against the backtracking engine
//     regexp2 on random text; any other pattern runs on regexp2. SentencePiece-style models use
//     Metaspace (spaces become ▁) or none.
//  4. The BPE model splits each pre-token into characters (bytes for
//     byte-level models) and merges the adjacent pair of lowest rank until
//     none has a rank (Sennrich et al. 2016, "Neural Machine Translation of
//     Rare Words with Subword Units"), with a heap of candidate merges and
//     a linked list of symbols, so a long word costs n log n, not n². A
//     character missing from a SentencePiece vocabulary falls back to its
//     UTF-8 bytes as <0xXX> tokens (byte_fallback). ignore_merges (Llama 3)
//     takes a pre-token that is itself in the vocabulary whole. Results are
//     cached per pre-token. The Llama 2 and Mistral layouts hand the model
//     the whole text as one word; when no merge of the vocabulary joins a
//     token ending in another character to one starting with ▁ (checked
//     at load), merges never cross the boundary before a ▁, and the word
//     is merged chunk by chunk with the same result.
//
// EncodeBatch encodes many texts on a bounded number of goroutines, with
// the same result whatever their number; the cache is shared.
//
// Decode maps ids to tokens and runs the decoder: ByteLevel maps the
// characters back to bytes; ByteFallback, Replace("▁", " "), Fuse and
// Strip undo the SentencePiece layout. Bytes that are not valid UTF-8
// become U+FFFD, as in the tokenizers crate. Decode writes special tokens
// out and does not apply transformers' clean_up_tokenization_spaces, so
// for byte-level tokenizers Decode(Encode(s)) == s for every valid UTF-8
// string s; CleansUp says whether transformers' decode would, and CleanUp
// does it.
//
// Where tokenizers.js and the tokenizers crate (which transformers runs)
// differ, this package follows the crate: a run of <0xXX> tokens that is
// not valid UTF-8 decodes to one U+FFFD per byte, single_word added tokens
// match only between non-word characters, the Metaspace decoder drops
// every ▁ of the first token, Lowercase maps İ to "i̇". And as
// transformers v5 does: add_bos_token and add_eos_token in
// tokenizer_config.json override the post-processor, the special tokens it
// names become added special tokens if tokenizer.json lacks them, and
// split_special_tokens makes special tokens in the text plain text.
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
// become ids; PromptCompletion splits a conversation into the prompt and
// completion texts as TRL prepares preference and prompt-completion data,
// and ContinueFinalMessage continues an assistant message as transformers'
// continue_final_message does. Further variables (tools, date_string,
// enable_thinking) go
// in ChatOptions.Vars; tools given as JSON keep their key order, so that
// tojson writes them as transformers does. A template the engine cannot
// compile or render returns an error; a template's own raise_exception
// returns its message.
//
// # Checking the tokenizers
//
// The ids, the decoded text and the special tokens are compared, on a
// text set with whitespace runs, CRLF, tabs, contractions in several
// cases, long numbers, accents, CJK, emoji sequences and flags, unicode
// spaces, code, special tokens inside text and long repeats, with those
// of tokenizers.js (@huggingface/tokenizers, the tokenizer of
// transformers.js) on real vocabularies: GPT-2, Llama 3.1, Qwen2 (its
// first 30000 merges), Mistral's SentencePiece BPE in both layouts and
// GPT-4o's o200k (its first 20000 tokens, also run with its pattern on
// regexp2),
// and variants of them that exercise lstrip/rstrip/normalized added
// tokens, NFKC and Lowercase, Digits, Removed and inverted splits and
// RobertaProcessing (testdata/tokenizer/gen.mjs); what tokenizers.js gets
// wrong is checked against the crate's own documented cases. Chat
// templates of SmolLM2, Qwen2.5 (with tools), Qwen3, Llama 3 and the
// Llama 2 shape are rendered against @huggingface/jinja
// (testdata/chat/gen.mjs). bench/tokenizer_compare.sh times both on the
// Opticks text and checks that the whole text gets the same ids.
//
// # LoRA adapters
//
// LoadAdapter applies a PEFT LoRA adapter directory — adapter_config.json
// and adapter_model.safetensors, tensors named as PEFT saves them
// (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight) — to a
// loaded model through nn.Model.AddLoRA: r, lora_alpha, lora_dropout,
// use_rslora, target_modules and layers_to_transform are honoured, and
// what it cannot apply exactly (DoRA, biases, rank_pattern, regex
// targets…) is refused by name. SaveAdapter writes the same format, so an
// adapter trained here loads in PEFT and vLLM unchanged. The logits of
// the adapted fixture model are checked against a float64 PyTorch
// reference written from PEFT's lora.Linear
// (testdata/adapter/gen_adapter.py).
package hf
