// The README's flow against TypeScript types that openapi-typescript generates from the app's document
// (./api.d.ts, written beside this file by tests/clients/test_generated_clients.py), called through
// openapi-fetch. Only type-checked (tsc --noEmit): no casts, no `any`, no untyped JSON.
import createClient from "openapi-fetch";
import type { components, paths } from "./api";

type Schemas = components["schemas"];

export async function readmeFlow(baseUrl: string, token: string): Promise<void> {
  const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });

  // Who am I.
  const me = await api.GET("/v1/me");
  if (me.data === undefined) throw new Error(me.error.error.message);
  const zone: string = me.data.timezone;

  // A habit (days_mask and position left to the server), and the list.
  const habit: Schemas["HabitIn"] = { name: "Morning run", kind: "check" };
  const created = await api.POST("/v1/habits", { body: habit });
  if (created.data === undefined) throw new Error(created.error.error.code);
  const kind: "check" | "duration" | "quantity" = created.data.kind;
  const habits = await api.GET("/v1/habits");
  const names: string[] = (habits.data ?? []).map((h) => h.name);

  // A 422 names the field at fault.
  const refused = await api.POST("/v1/habits", { body: { name: "Too many days", days_mask: 500 } });
  if (refused.response.status === 422 && refused.error !== undefined) {
    const field: string | null | undefined = refused.error.error.field;
    const fields: Schemas["ErrorFieldOut"][] = refused.error.error.fields ?? [];
    console.log(field, fields.map((f) => f.message));
  }

  // An offline upload: a habit and its completion.
  const habitId = crypto.randomUUID();
  const mutations: Schemas["SyncMutation"][] = [
    {
      mutation_id: 1,
      entity: "habit",
      op: "upsert",
      id: habitId,
      client_updated_at: "2026-03-02T06:00:00Z",
      data: { name: "Stretch" },
    },
    {
      mutation_id: 2,
      entity: "habit_completion",
      op: "upsert",
      id: "completion-id-as-uuid5-of-habit-and-day",
      client_updated_at: "2026-03-02T06:10:04.120Z",
      data: { habit_id: habitId, local_date: "2026-03-02" },
    },
  ];
  const pushed = await api.POST("/v1/sync/push", {
    body: { client_id: "phone-1", batch_id: crypto.randomUUID(), schema_version: 1, mutations },
  });
  if (pushed.data === undefined) throw new Error(pushed.error.error.code);
  const status: "queued" | "processing" | "applied" | "failed" = pushed.data.status;

  // Its status.
  const batch = await api.GET("/v1/sync/batches/{batch_id}", {
    params: { path: { batch_id: pushed.data.batch_id } },
  });
  const rejected: Schemas["RejectedOut"][] = batch.data?.rejected ?? [];
  const applied: number | undefined = batch.data?.applied;

  // The pull: typed rows per table.
  const pulled = await api.GET("/v1/sync/pull", { params: { query: { limit: 500 } } });
  if (pulled.data === undefined) throw new Error(pulled.error.error.code);
  const stretch: Schemas["HabitRow"] | undefined = pulled.data.changes.habits?.upserted[0];
  const day: string | undefined = pulled.data.changes.habit_completions?.upserted[0]?.local_date;
  const merged: number | undefined = pulled.data.last_mutation_ids["phone-1"];

  // Another protocol version: 409 reset_required.
  const reset = await api.POST("/v1/sync/push", {
    body: { client_id: "phone-1", batch_id: crypto.randomUUID(), schema_version: 2, mutations },
  });
  if (reset.response.status === 409 && reset.error !== undefined) {
    const code: string = reset.error.error.code;
    console.log(code === "reset_required");
  }

  // Reminders: a wall-clock time of day, HH:MM.
  const reminder = await api.POST("/v1/reminders", {
    body: { kind: "habit", habit_id: habitId, local_time: "07:30" },
  });
  const at: string | undefined = reminder.data?.local_time;

  console.log(zone, kind, names, status, rejected, applied, stretch?.name, day, merged, at);
}
