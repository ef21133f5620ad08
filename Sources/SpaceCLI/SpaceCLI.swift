// SpaceCLI: the `space` command line's argument language and output lines, without I/O, so they
// are tested on their own. The commands themselves are in Sources/space.
