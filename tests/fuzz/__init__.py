"""Black-box HTTP fuzzer for raftkv's two API faces (native /v1 and etcd's /v3 gateway)."""
