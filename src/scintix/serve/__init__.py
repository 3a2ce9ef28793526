"""``scintix serve``: one page and a JSON API over trained runs, for one scan at a time."""
