from django.apps import AppConfig


class ListsConfig(AppConfig):
    """Own what is published: lists, subjects, listings, measures, restrictions, batches, the feed."""

    name = "lists"
    verbose_name = "Credit lists"
