package main

func benchScale(args []string) (string, error) { return "", nil }
