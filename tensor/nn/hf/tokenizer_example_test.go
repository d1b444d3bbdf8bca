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
	tok, err := LoadTokenizer(exampleDir("llama3")) // Llama 3.1's tokenizer
	if err != nil {
		fmt.Println(err)
		return
	}
	ids, err := tok.Encode("Hello world!<|eot_id|>")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ids)
	fmt.Println(tok.AddSpecial(ids)) // add_special_tokens=True: the BOS
	text, _ := tok.Decode(ids)
	fmt.Println(text)
	// Output:
	// [9906 1917 0 128009]
	// [128000 9906 1917 0 128009]
	// Hello world!<|eot_id|>
}

func ExampleTokenizer_EncodeChat() {
	// A Llama 3.1 tokenizer directory with Llama 3 Instruct's chat template.
	dir := exampleDir("llama3")
	tmpl, _ := os.ReadFile(filepath.Join("testdata", "chat", "llama3.jinja"))
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
	// "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
	// [128000 128006 9125 128007 271 3513 10015 13 128009 128006 882 128007 271 17 10 17 30 128009 128006 78191 128007 271]
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
