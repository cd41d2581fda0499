from django.db import migrations


class Migration(migrations.Migration):
    """IdempotencyRecord now belongs to the ``common`` app; its table stays where it is."""

    dependencies = [
        ("crm", "0005_mailbox_approval_decision"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="IdempotencyRecord")],
            database_operations=[],
        ),
    ]
