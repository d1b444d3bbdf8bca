package tensor

// Ignore is the label that leaves a row of logits out of a loss: the row
// adds nothing to the loss, does not count in its mean, and gets a zero
// gradient. It is −100, PyTorch's and transformers' ignore_index, so label
// arrays prepared for them (prompt tokens and padding masked with −100)
// work unchanged; every loss over labels in posttrain — distill, prefopt,
// tensor/autograd — uses this one constant and, beyond it, ignores any
// negative label.
const Ignore int32 = -100
