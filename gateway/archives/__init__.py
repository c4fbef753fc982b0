"""Personnel archives: where an archive may go (the rules), and the transfer clock (deadlines)."""
