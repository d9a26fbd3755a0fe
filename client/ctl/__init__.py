"""petcdctl, an etcdctl look-alike on petcd.client; entry point: main.main."""
