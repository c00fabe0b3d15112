// The images a local node runs: built here because no registry is reachable.
module pkiwarden.dev/local/images

go 1.26.0
