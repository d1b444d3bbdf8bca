package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/ardanlabs/jinja"
)

// Message is one turn of a conversation: a role ("system", "user",
// "assistant", "tool") and its text.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// Extra holds further fields of the message as a JSON object —
	// tool_calls, name, tool_call_id, reasoning_content… — added to the
	// message the template sees, in their order. Role and Content win over
	// fields of the same name.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// ChatOptions are the arguments of a chat-template render besides the
// messages.
type ChatOptions struct {
	// AddGenerationPrompt appends the opening of an assistant turn, so that
	// a model continues as the assistant (a prompt for sampling); leave it
	// false to render a whole conversation for training.
	AddGenerationPrompt bool
	// ContinueFinalMessage cuts the render right after the last message's
	// text, so that a model continues that (assistant) message instead of
	// starting a new turn, as transformers' continue_final_message does.
	ContinueFinalMessage bool
	// Vars are further template variables: tools, documents, date_string,
	// enable_thinking… They override the special-token variables
	// (bos_token and the like) and may not be named messages or
	// add_generation_prompt. A value may be any Go value of JSON's shapes
	// (map[string]any is rendered with its keys sorted) or a
	// json.RawMessage, decoded keeping its objects' key order, as Python's
	// json.loads does: pass tools that way for a tojson identical to
	// transformers'.
	Vars map[string]any
}

// ChatTemplate is a compiled Jinja chat template, rendered as
// transformers' apply_chat_template renders it: trim_blocks and
// lstrip_blocks on, raise_exception raising, the special tokens as
// variables. The engine is github.com/ardanlabs/jinja, which implements
// what chat templates use (namespace(), loops, slices, string methods,
// tojson…); a template that uses anything else fails to compile or to
// render with an error, never silently. A ChatTemplate is safe for
// concurrent use.
type ChatTemplate struct {
	tmpl *jinja.Template
	vars map[string]any
}

// NewChatTemplate compiles src. specials holds the special-token
// variables (bos_token, eos_token, pad_token, unk_token) the template may
// use; a missing one is none in the template.
func NewChatTemplate(src string, specials map[string]string) (*ChatTemplate, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("hf: NewChatTemplate: empty template")
	}
	tmpl, err := jinja.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("hf: NewChatTemplate: the template cannot be compiled: %w", err)
	}
	vars := map[string]any{"bos_token": nil, "eos_token": nil, "pad_token": nil, "unk_token": nil}
	for k, v := range specials {
		vars[k] = v
	}
	return &ChatTemplate{tmpl: tmpl, vars: vars}, nil
}

// Render renders msgs. An error from the template itself (its
// raise_exception, such as "Conversation roles must alternate") is
// returned with the template's message.
func (c *ChatTemplate) Render(msgs []Message, opts ChatOptions) (string, error) {
	data := make(map[string]any, len(c.vars)+len(opts.Vars)+2)
	for k, v := range c.vars {
		data[k] = v
	}
	for k, v := range opts.Vars {
		if k == "messages" || k == "add_generation_prompt" {
			return "", fmt.Errorf("hf: ChatTemplate.Render: Vars may not set %q", k)
		}
		if raw, ok := v.(json.RawMessage); ok {
			jv, err := jsonValue(raw)
			if err != nil {
				return "", fmt.Errorf("hf: ChatTemplate.Render: Vars[%q]: %w", k, err)
			}
			v = jv
		}
		data[k] = v
	}
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(m.Role))
		d.AsDict().Set("content", jinja.NewString(m.Content))
		if len(m.Extra) > 0 {
			extra, err := jsonValue(m.Extra)
			if err != nil || !extra.IsDict() {
				return "", fmt.Errorf("hf: ChatTemplate.Render: message %d: Extra is not a JSON object (%v)", i, err)
			}
			for _, k := range extra.AsDict().OrderedKeys() {
				if k != "role" && k != "content" {
					v, _ := extra.AsDict().Get(k)
					d.AsDict().Set(k, v)
				}
			}
		}
		list[i] = d
	}
	data["messages"] = jinja.NewList(list)
	data["add_generation_prompt"] = opts.AddGenerationPrompt
	vals := make(map[string]jinja.Value, len(data))
	for k, v := range data {
		if jv, ok := v.(jinja.Value); ok {
			vals[k] = jv
		} else {
			vals[k] = jinja.FromGoValue(v)
		}
	}
	s, err := c.tmpl.RenderValues(vals)
	if err != nil {
		return "", fmt.Errorf("hf: ChatTemplate.Render: %w", err)
	}
	if opts.ContinueFinalMessage {
		if len(msgs) == 0 || opts.AddGenerationPrompt {
			return "", errors.New("hf: ChatTemplate.Render: ContinueFinalMessage needs a final message and no generation prompt")
		}
		final := strings.TrimSpace(msgs[len(msgs)-1].Content)
		i := strings.LastIndex(s, final)
		if i < 0 {
			return "", errors.New("hf: ChatTemplate.Render: the final message's text is not in the render, so it cannot be continued")
		}
		s = s[:i+len(final)]
	}
	return s, nil
}

// PromptCompletion renders a prompt conversation and its completion (the
// assistant's answer: a chosen or rejected response, an SFT target) as TRL
// prepares prompt-completion and preference data: the prompt with the
// generation prompt when it ends with a user or tool message, continuing
// its final message when that is the assistant's; the completion as what
// rendering prompt and completion together adds after the prompt. It
// returns an error if that render does not start with the prompt's (a
// template that rewrites earlier turns, as Qwen3's drops past reasoning),
// where slicing would be wrong. opts.AddGenerationPrompt and
// opts.ContinueFinalMessage are set by that rule.
func (c *ChatTemplate) PromptCompletion(prompt, completion []Message, opts ChatOptions) (promptText, completionText string, err error) {
	if len(prompt) == 0 || len(completion) == 0 {
		return "", "", errors.New("hf: ChatTemplate.PromptCompletion: empty prompt or completion")
	}
	switch role := prompt[len(prompt)-1].Role; role {
	case "user", "tool":
		opts.AddGenerationPrompt, opts.ContinueFinalMessage = true, false
	case "assistant":
		opts.AddGenerationPrompt, opts.ContinueFinalMessage = false, true
	default:
		return "", "", fmt.Errorf("hf: ChatTemplate.PromptCompletion: the prompt ends with a %q message", role)
	}
	p, err := c.Render(prompt, opts)
	if err != nil {
		return "", "", err
	}
	opts.AddGenerationPrompt, opts.ContinueFinalMessage = false, false
	full, err := c.Render(append(slices.Clip(prompt), completion...), opts)
	if err != nil {
		return "", "", err
	}
	if !strings.HasPrefix(full, p) {
		return "", "", errors.New("hf: ChatTemplate.PromptCompletion: the template renders the prompt differently once the completion follows it")
	}
	return p, full[len(p):], nil
}

// jsonValue decodes JSON into a template value, keeping the key order of
// objects and the distinction between integers and floats.
func jsonValue(raw json.RawMessage) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return jinja.Value{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jinja.Value{}, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (jinja.Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return jinja.Value{}, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			d := jinja.NewDict()
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return jinja.Value{}, err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return jinja.Value{}, err
				}
				d.AsDict().Set(k.(string), v)
			}
			_, err := dec.Token() // }
			return d, err
		case '[':
			var items []jinja.Value
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return jinja.Value{}, err
				}
				items = append(items, v)
			}
			_, err := dec.Token() // ]
			return jinja.NewList(items), err
		}
		return jinja.Value{}, fmt.Errorf("unexpected %v", t)
	}
	return jinja.FromGoValue(tok), nil
}

// chatState is the lazily compiled template of a Tokenizer: a tokenizer whose
// template this engine cannot compile still encodes and decodes.
type chatState struct {
	once sync.Once
	tmpl *ChatTemplate
	err  error
}

// ChatTemplate returns the tokenizer's chat template (chat_template.jinja,
// else tokenizer_config.json's chat_template), compiled with the
// tokenizer's special tokens as variables. It returns an error if the
// model ships none or the template cannot be compiled.
func (t *Tokenizer) ChatTemplate() (*ChatTemplate, error) {
	t.chat.once.Do(func() {
		if t.chatTemplate == "" {
			t.chat.err = errors.New("hf: ChatTemplate: the tokenizer has no chat template")
			return
		}
		t.chat.tmpl, t.chat.err = NewChatTemplate(t.chatTemplate, t.specialNames)
	})
	return t.chat.tmpl, t.chat.err
}

// ApplyChatTemplate renders msgs with the tokenizer's chat template, as
// transformers' apply_chat_template(msgs, tokenize=False) does.
func (t *Tokenizer) ApplyChatTemplate(msgs []Message, opts ChatOptions) (string, error) {
	c, err := t.ChatTemplate()
	if err != nil {
		return "", err
	}
	return c.Render(msgs, opts)
}

// PromptCompletion renders a prompt and its completion with the
// tokenizer's chat template, as ChatTemplate.PromptCompletion does.
func (t *Tokenizer) PromptCompletion(prompt, completion []Message, opts ChatOptions) (promptText, completionText string, err error) {
	c, err := t.ChatTemplate()
	if err != nil {
		return "", "", err
	}
	return c.PromptCompletion(prompt, completion, opts)
}

// EncodeChat returns the token ids of a conversation, as transformers'
// apply_chat_template(msgs, tokenize=True) does: the rendered template
// encoded without adding special tokens (the template writes the BOS
// itself when the model wants one). This is how SFT and preference data
// become ids.
func (t *Tokenizer) EncodeChat(msgs []Message, opts ChatOptions) ([]int32, error) {
	s, err := t.ApplyChatTemplate(msgs, opts)
	if err != nil {
		return nil, err
	}
	return t.Encode(s)
}
