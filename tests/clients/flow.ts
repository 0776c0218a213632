// The phone-and-clinician flow of flow.py, written against the types openapi-typescript generates
// from the served document (./schema.d.ts) through openapi-fetch. Type-checked with
// `tsc --strict --noEmit` by tests/clients/test_generated_clients.py: no casts, no `any`, no
// hand-written requests; every answer is narrowed by what the document says it is.

import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

function ok<T>(data: T | undefined, what: string): T {
  if (data === undefined) {
    throw new Error(`${what}: not the documented success answer`);
  }
  return data;
}

function client(base: string, token?: string) {
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  return createClient<paths>({ baseUrl: base, headers });
}

async function signIn(base: string, email: string, password: string): Promise<Schemas["TokenPair"]> {
  const { data } = await client(base).POST("/v1/auth/token", { body: { email, password } });
  return ok(data, "sign in");
}

function sleep(seconds: number): Promise<void> {
  return new Promise((done) => setTimeout(done, seconds * 1000));
}

// The token in the newest email to `to` that links to `page` (the runner reads the mail the test's
// SMTP server files, as a mail client would; the flow itself touches no file).
export type EmailedToken = (to: string, page: string) => Promise<string>;

export async function main(
  base: string,
  adminEmail: string,
  adminPassword: string,
  emailedToken: EmailedToken,
): Promise<void> {
  const anonymous = client(base);
  const lines = ok((await anonymous.GET("/v1/crisis-resources")).data, "crisis lines");
  if (lines.items.length === 0) throw new Error("no crisis lines");

  // An admin makes a clinician.
  const admin = await signIn(base, adminEmail, adminPassword);
  const clinicianEmail = `clinician-${Date.now()}@example.test`;
  const clinicianPassword = "clinician password 1";
  const made = await client(base, admin.access_token).POST("/v1/admin/clinicians", {
    body: {
      email: clinicianEmail,
      password: clinicianPassword,
      display_name: "Dr. Rivera",
      organization: "Eastside Clinic",
      timezone: "America/New_York",
    },
  });
  ok(made.data, "clinician");

  // The patient registers, signs in, refreshes (and retries the refresh).
  const email = `phone-${Date.now()}@example.test`;
  const password = "correct horse battery";
  const registered = await anonymous.POST("/v1/auth/register", {
    body: { email, password, display_name: "Sam", timezone: "America/New_York" },
  });
  ok(registered.data, "registration");
  // The verification link from the email confirms the address.
  const verified = await anonymous.POST("/v1/auth/verify-email", {
    body: { token: await emailedToken(email, "verify-email") },
  });
  if (verified.response.status !== 204) throw new Error("verify email");
  const pair = await signIn(base, email, password);
  const first = ok(
    (await anonymous.POST("/v1/auth/refresh", { body: { refresh_token: pair.refresh_token } })).data,
    "refresh",
  );
  const retried = ok(
    (await anonymous.POST("/v1/auth/refresh", { body: { refresh_token: pair.refresh_token } })).data,
    "retried refresh",
  );
  if (retried.refresh_token !== first.refresh_token) throw new Error("a retry gets the same pair");
  const phone = client(base, retried.access_token);
  const me = ok((await phone.GET("/v1/me")).data, "me");

  // A SOWS check-in from the instrument the service serves, and one deleted again.
  const instruments = ok((await phone.GET("/v1/instruments")).data, "instruments");
  const sows = instruments.items.find((i) => i.code === "sows");
  if (sows === undefined) throw new Error("no SOWS");
  const answers: Record<string, number> = {};
  for (const item of sows.items) answers[item.key] = 1;
  const now = Date.now();
  const minutes = (n: number) => new Date(now + n * 60_000).toISOString();
  const checkin = ok(
    (
      await phone.POST("/v1/checkins", {
        body: { id: null, recorded_at: minutes(-5), instrument: "sows", answers, craving: 3 },
      })
    ).data,
    "check-in",
  );
  if (checkin.total !== sows.items.length) throw new Error("SOWS total");
  const gone = ok(
    (await phone.POST("/v1/checkins", { body: { id: null, recorded_at: minutes(-4), craving: 1 } }))
      .data,
    "second check-in",
  );
  const deleted = await phone.DELETE("/v1/checkins/{checkin_id}", {
    params: { path: { checkin_id: gone.id } },
  });
  if (deleted.response.status !== 204) throw new Error("delete");

  // A medication, a dose taken, adherence, the agenda.
  const today = new Date(now - 2 * 86_400_000).toISOString().slice(0, 10);
  const medication = ok(
    (
      await phone.POST("/v1/medications", {
        body: {
          id: null,
          name: "Buprenorphine/naloxone",
          dose: 8,
          unit: "mg",
          times: ["00:00", "12:00"],
          days_of_week: null,
          start_date: today,
          end_date: null,
          as_needed: false,
          rxnorm_code: null,
        },
      })
    ).data,
    "medication",
  );
  const agenda = ok((await phone.GET("/v1/agenda")).data, "agenda");
  const past = agenda.doses.filter((d) => Date.parse(d.scheduled_for) <= Date.now());
  const due = past[0];
  if (due !== undefined) {
    const dose = ok(
      (
        await phone.POST("/v1/medications/{medication_id}/doses", {
          params: { path: { medication_id: medication.id } },
          body: {
            id: null,
            status: "taken",
            scheduled_for: due.scheduled_for,
            taken_at: due.scheduled_for,
            note: null,
          },
        })
      ).data,
      "dose",
    );
    if (dose.status !== "taken") throw new Error("dose status");
  }
  const adherence = ok((await phone.GET("/v1/adherence")).data, "adherence");
  if (adherence.on_time_window_minutes <= 0) throw new Error("adherence window");

  // Counseling.
  const session = ok(
    (
      await phone.POST("/v1/counseling-sessions", {
        body: {
          id: null,
          kind: "individual",
          title: "Weekly counseling",
          starts_at: minutes(24 * 60),
          duration_minutes: 50,
          provider_name: null,
          location: null,
          attendance: "scheduled",
          note: null,
        },
      })
    ).data,
    "counseling session",
  );
  if (session.attendance !== "scheduled") throw new Error("attendance");
  ok((await phone.GET("/v1/counseling/attendance")).data, "attendance summary");

  // Sync, page by page; the deleted check-in comes as a tombstone, typed per `type`.
  let since: string | undefined;
  let deletes = 0;
  let upserts = 0;
  for (;;) {
    const page = ok(
      (await phone.GET("/v1/sync", { params: { query: { since, limit: 2 } } })).data,
      "sync page",
    );
    for (const change of page.changes) {
      if (change.op === "delete") {
        deletes += 1;
        if (change.data !== null) throw new Error("a delete carries no data");
      } else {
        upserts += 1;
      }
      if (change.type === "checkin" && change.data !== null && change.data.id !== checkin.id) {
        throw new Error("unexpected check-in");
      }
    }
    since = page.cursor;
    if (!page.has_more) break;
  }
  if (deletes !== 1 || upserts < 3) throw new Error(`sync: ${deletes} deletes, ${upserts} upserts`);

  // Consent to the clinician, found by invite code; the clinician reads the check-ins.
  const doctorPair = await signIn(base, clinicianEmail, clinicianPassword);
  const doctor = client(base, doctorPair.access_token);
  const doctorMe = ok((await doctor.GET("/v1/me")).data, "clinician me");
  const inviteCode = doctorMe.invite_code;
  if (inviteCode === undefined) throw new Error("a clinician has an invite code");
  const card = ok(
    (await phone.GET("/v1/clinicians/lookup", { params: { query: { invite_code: inviteCode } } }))
      .data,
    "clinician card",
  );
  const consent = ok(
    (
      await phone.POST("/v1/consents", {
        body: {
          recipient_id: card.id,
          categories: ["symptoms", "medications", "counseling"],
          purpose: "treatment",
          share_weekly_summary: false,
          signature: "Sam Example",
          consent_text_version: "2026-01",
          expires_at: minutes(90 * 24 * 60),
          data_from: minutes(-24 * 60),
        },
      })
    ).data,
    "consent",
  );
  if (consent.status !== "active") throw new Error("consent status");
  const roster = ok((await doctor.GET("/v1/clinician/patients")).data, "roster");
  if (roster.items.map((e) => e.patient_id).join() !== me.id) throw new Error("roster");
  const seen = ok(
    (
      await doctor.GET("/v1/clinician/patients/{patient_id}/checkins", {
        params: { path: { patient_id: me.id } },
      })
    ).data,
    "clinician check-ins",
  );
  if (seen.items.map((c) => c.id).join() !== checkin.id) throw new Error("clinician check-ins");

  // The summary as an HTML page and as a PDF: each an operation with one media type.
  const html = await doctor.GET("/v1/clinician/patients/{patient_id}/summary.html", {
    params: { path: { patient_id: me.id } },
    parseAs: "text",
  });
  const page = ok(html.data, "summary html");
  if (!page.toLowerCase().startsWith("<!doctype html>")) throw new Error("summary html");
  const pdf = await doctor.GET("/v1/clinician/patients/{patient_id}/summary.pdf", {
    params: { path: { patient_id: me.id } },
    parseAs: "arrayBuffer",
  });
  if (ok(pdf.data, "summary pdf").byteLength === 0) throw new Error("summary pdf");

  // The patient's own data as a zip of CSVs.
  const zip = await phone.GET("/v1/export.zip", { parseAs: "arrayBuffer" });
  if (ok(zip.data, "csv export").byteLength === 0) throw new Error("csv export");

  // A bulk export to the end: kick off, poll (Retry-After, X-Progress), download each NDJSON file.
  const kickoff = await doctor.GET("/fhir/Patient/$export", {
    params: { header: { Prefer: "respond-async" } },
  });
  const status = kickoff.response.headers.get("Content-Location");
  if (kickoff.response.status !== 202 || status === null) throw new Error("kick-off");
  const jobId = status.split("/").pop() ?? "";
  let manifest: Schemas["Manifest"] | undefined;
  while (manifest === undefined) {
    const polled = await doctor.GET("/fhir/bulkstatus/{job_id}", {
      params: { path: { job_id: jobId } },
    });
    manifest = polled.data;
    if (manifest === undefined) {
      if (polled.response.status !== 202) throw new Error("bulk status");
      await sleep(Number(polled.response.headers.get("Retry-After") ?? "1"));
    }
  }
  for (const file of manifest.output) {
    const [jobPart, name] = file.url.split("/").slice(-2);
    const rtype = (name ?? "").replace(/\.ndjson$/, "");
    const ndjson = await doctor.GET("/fhir/bulkfiles/{job_id}/{rtype}.ndjson", {
      params: { path: { job_id: jobPart ?? jobId, rtype } },
      parseAs: "text",
    });
    const text = ok(ndjson.data, "bulk file");
    if (text.trim().split("\n").length !== file.count) throw new Error("bulk file lines");
  }

  // The password is forgotten: a reset link by email sets a new one and ends every sign-in.
  const asked = await anonymous.POST("/v1/auth/password-reset", { body: { email } });
  ok(asked.data, "password reset request");
  const newPassword = "a brand new passphrase";
  const reset = await anonymous.POST("/v1/auth/password-reset/confirm", {
    body: { token: await emailedToken(email, "reset-password"), new_password: newPassword },
  });
  if (reset.response.status !== 204) throw new Error("password reset");
  if ((await phone.GET("/v1/me")).response.status !== 401) throw new Error("old sign-in ended");
  const again = client(base, (await signIn(base, email, newPassword)).access_token);
  if (ok((await again.GET("/v1/me")).data, "me again").id !== me.id) throw new Error("new sign-in");
}
