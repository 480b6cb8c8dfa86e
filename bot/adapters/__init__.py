"""Chat platforms: each turns its input into IncomingMessage and implements ChatGateway."""
