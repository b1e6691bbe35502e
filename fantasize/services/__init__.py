"""Domain logic over the models: no request, no Socket.IO; raises fantasize.errors."""
