package hf

import (
	"fmt"
	"os"
	"path/filepath"
)

// exampleDir returns a model directory holding a fixture tokenizer (the
// fixtures are stored gzipped); examples are run by go test, where it
// exists.
func exampleDir(name string) string {
	var tb panicTB
	return fixtureDir(&tb, name)
}

func ExampleLoadTokenizer() {
	// A Mistral 7B tokenizer directory: SentencePiece-style BPE.
	tok, err := LoadTokenizer(exampleDir("mistral"))
	if err != nil {
		fmt.Println(err)
		return
	}
	ids, err := tok.Encode("Hello world!</s>")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ids)
	fmt.Println(tok.AddSpecial(ids)) // add_special_tokens=True: the BOS
	text, _ := tok.Decode(ids)
	fmt.Println(text)
	// Output:
	// [22557 1526 28808 2]
	// [1 22557 1526 28808 2]
	// Hello world!</s>
}

func ExampleTokenizer_EncodeChat() {
	// The Mistral tokenizer directory with a Llama 2 chat template.
	dir := exampleDir("mistral")
	tmpl, _ := os.ReadFile(filepath.Join("testdata", "chat", "llama2.jinja"))
	os.WriteFile(filepath.Join(dir, "chat_template.jinja"), tmpl, 0o644)
	defer os.Remove(filepath.Join(dir, "chat_template.jinja"))
	tok, err := LoadTokenizer(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	msgs := []Message{
		{Role: "system", Content: "Be brief."},
		{Role: "user", Content: "2+2?"},
	}
	text, err := tok.ApplyChatTemplate(msgs, ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q\n", text)
	// The ids, as tokenizers.js gives them for the text.
	ids, _ := tok.EncodeChat(msgs, ChatOptions{AddGenerationPrompt: true})
	fmt.Println(ids)
	// Output:
	// "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n2+2? [/INST]"
	// [1 733 16289 28793 2087 18741 4060 13 3574 6817 28723 13 28789 700 18741 4060 13 13 28750 28806 28750 28804 733 28748 16289 28793]
}

func ExampleChatTemplate() {
	// SmolLM2-Instruct's template: a default system turn when there is none.
	const src = `{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`
	c, err := NewChatTemplate(src, map[string]string{"eos_token": "<|im_end|>"})
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := c.Render([]Message{{Role: "user", Content: "Hi!"}, {Role: "assistant", Content: "Hello."}}, ChatOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(s)
	// Output:
	// <|im_start|>system
	// You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
	// <|im_start|>user
	// Hi!<|im_end|>
	// <|im_start|>assistant
	// Hello.<|im_end|>
}
