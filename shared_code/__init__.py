"""Everything the function folders share: the bot, its storage and its protocol."""
