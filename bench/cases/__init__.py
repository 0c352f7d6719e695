"""One module per benchmark area; each returns report rows."""
