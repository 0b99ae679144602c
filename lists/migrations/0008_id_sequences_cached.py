from django.db import migrations

# A publication draws a million subject and listing ids; with a cache each backend takes them
# from the sequence a thousand at a time (nextval was ~5% of a big publication). Ids then follow
# creation order only per connection, which nothing relies on. The change feed's sequence is
# not cached: its order is what feed readers page by.
TABLES = ("lists_subject", "lists_listing")


class Migration(migrations.Migration):
    dependencies = [
        ("lists", "0007_fewer_index_entries_per_publication"),
    ]

    operations = [
        migrations.RunSQL(
            [f"ALTER TABLE {table} ALTER COLUMN id SET CACHE 1000" for table in TABLES],
            [f"ALTER TABLE {table} ALTER COLUMN id SET CACHE 1" for table in TABLES],
        ),
    ]
