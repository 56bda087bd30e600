import { useApp } from './hooks';
import { AuthScreen } from './Auth';
import { Shell } from './Shell';

export function App() {
  const phase = useApp((s) => s.phase);
  if (phase === 'starting')
    return (
      <main className="splash" aria-busy="true">
        <img src="/icon.svg" alt="Parley" width="64" height="64" />
      </main>
    );
  if (phase === 'anon') return <AuthScreen />;
  return <Shell />;
}
