package p

func TestUndocumented() {}
