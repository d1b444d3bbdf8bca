package hf

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ardanlabs/jinja"
)

// Message is one turn of a conversation: a role ("system", "user",
// "assistant", "tool") and its text.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatOptions are the arguments of a chat-template render besides the
// messages.
type ChatOptions struct {
	// AddGenerationPrompt appends the opening of an assistant turn, so that
	// a model continues as the assistant (a prompt for sampling); leave it
	// false to render a whole conversation for training.
	AddGenerationPrompt bool
	// Vars are further template variables: tools, documents, date_string,
	// enable_thinking… They override the special-token variables
	// (bos_token and the like) and may not be named messages or
	// add_generation_prompt.
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
		data[k] = v
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data["messages"] = list
	data["add_generation_prompt"] = opts.AddGenerationPrompt
	s, err := c.tmpl.Render(data)
	if err != nil {
		return "", fmt.Errorf("hf: ChatTemplate.Render: %w", err)
	}
	return s, nil
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
