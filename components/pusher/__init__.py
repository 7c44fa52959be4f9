"""AtomicPusher: TFX's Pusher with versions that only grow and pushes a server never sees half of."""
