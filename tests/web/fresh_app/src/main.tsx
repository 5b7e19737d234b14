// The app's entry: the original app's execution page (copied in by the test from
// web/test/original-app/), for the execution named in ?id=.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { ExecutionDetailPage } from "./ExecutionDetailPage";

const id = new URLSearchParams(location.search).get("id") ?? "";
createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ExecutionDetailPage id={id} />
  </StrictMode>,
);
