"""Domain codes: credit codes, identity numbers, region codes and the code lists kept as data."""
