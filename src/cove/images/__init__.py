"""Images: root filesystems that sandboxes run on.

An image is an ordered list of layers (directory trees in overlayfs's own
diff format: a deleted file is a 0/0 character device) plus the config that
says how to start it (ENV, WORKDIR, USER, ENTRYPOINT, CMD). `store` keeps
them on disk by content; the local runtime stacks an image's layers as
overlayfs lower directories under each sandbox's own writable layer.
"""
