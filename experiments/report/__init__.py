"""What reviewers open: the HTML report with its plots, and the long-form CSV."""
